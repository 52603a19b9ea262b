use mangaassist_catalog::DataError;

/// Everything that can go wrong in the memory daemon, with the gRPC code each maps to.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("corrupt record in {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("demo data: {0}")]
    Data(#[from] DataError),
    #[error("storage task failed: {0}")]
    Task(String),
    /// The backend cannot be reached or is shedding load (DynamoDB throttling, 5xx, timeouts):
    /// the caller may retry or degrade.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error(
        "DynamoDB table `{table}` does not exist: set memory.dynamodb.create_tables = true \
         (local use) or create it as described in docs/operations.md"
    )]
    MissingTable { table: String },
    #[error(transparent)]
    Aws(#[from] mangaassist_aws::AwsError),
}

impl MemoryError {
    pub fn code(&self) -> tonic::Code {
        match self {
            Self::InvalidArgument(_) => tonic::Code::InvalidArgument,
            Self::PermissionDenied(_) => tonic::Code::PermissionDenied,
            Self::Storage(_)
            | Self::Corrupt { .. }
            | Self::CreateDir { .. }
            | Self::Data(_)
            | Self::Task(_)
            | Self::MissingTable { .. }
            | Self::Aws(_) => tonic::Code::Internal,
            Self::Unavailable(_) => tonic::Code::Unavailable,
        }
    }

    pub(crate) fn storage(e: impl Into<redb::Error>) -> Self {
        Self::Storage(e.into().to_string())
    }
}

impl From<MemoryError> for tonic::Status {
    fn from(e: MemoryError) -> Self {
        tonic::Status::new(e.code(), e.to_string())
    }
}

/// Everything that can go wrong in the cache daemon, with the gRPC code each maps to.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("embedding failed: {0}")]
    Embedding(#[from] mangaassist_embedding::EmbedError),
    #[error("cache backend: {0}")]
    Backend(String),
    #[error("cache task failed: {0}")]
    Task(String),
}

impl CacheError {
    pub fn code(&self) -> tonic::Code {
        match self {
            Self::InvalidArgument(_) => tonic::Code::InvalidArgument,
            Self::Backend(_) => tonic::Code::Unavailable,
            Self::Embedding(_) | Self::Task(_) => tonic::Code::Internal,
        }
    }
}

impl From<CacheError> for tonic::Status {
    fn from(e: CacheError) -> Self {
        tonic::Status::new(e.code(), e.to_string())
    }
}

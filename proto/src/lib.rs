//! The gRPC contracts of the MangaAssist mesh: generated messages, clients and server traits for
//! every daemon, plus the encoded descriptor set for server reflection.
#![allow(clippy::all, clippy::pedantic)]

pub mod v1 {
    tonic::include_proto!("mangaassist.v1");

    /// `FileDescriptorSet` of every MangaAssist proto, for `tonic-reflection`.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("mangaassist_descriptor");

    impl Intent {
        /// Stable lower-case name used in config, metrics, logs and the WebSocket protocol.
        pub fn label(self) -> &'static str {
            match self {
                Intent::Unspecified => "unspecified",
                Intent::Greeting => "greeting",
                Intent::Faq => "faq",
                Intent::OrderStatus => "order_status",
                Intent::ProductSearch => "product_search",
                Intent::Recommendation => "recommendation",
                Intent::Comparison => "comparison",
                Intent::Complaint => "complaint",
                Intent::ReturnRefund => "return_refund",
                Intent::Chitchat => "chitchat",
            }
        }

        /// Inverse of [`Intent::label`].
        pub fn from_label(s: &str) -> Option<Self> {
            Self::ALL.iter().copied().find(|i| i.label() == s)
        }

        /// Every real intent (without `Unspecified`), in proto order.
        pub const ALL: [Intent; 9] = [
            Intent::Greeting,
            Intent::Faq,
            Intent::OrderStatus,
            Intent::ProductSearch,
            Intent::Recommendation,
            Intent::Comparison,
            Intent::Complaint,
            Intent::ReturnRefund,
            Intent::Chitchat,
        ];
    }

    impl ModelTier {
        pub fn label(self) -> &'static str {
            match self {
                ModelTier::Unspecified => "unspecified",
                ModelTier::Fast => "fast",
                ModelTier::Smart => "smart",
            }
        }
    }
}

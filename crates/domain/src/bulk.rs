//! Bulk operations: one action applied to every license a filter matched, as a job.
use crate::text_enum::text_enum;

text_enum! {
    /// Where a bulk operation stands.
    pub enum BulkStatus("bulk operation status") {
        /// Created; its job has not started.
        Pending => "pending",
        /// Its job is applying the items.
        Running => "running",
        /// Every item was applied (each with its own result).
        Completed => "completed",
        /// Stopped on an error of its own (not of an item); `last_error` says which.
        Failed => "failed",
    }
}

impl BulkStatus {
    /// `completed` or `failed`: nothing more happens to the operation.
    #[must_use]
    pub const fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_finish() {
        for s in BulkStatus::VARIANTS {
            assert_eq!(s.as_str().parse::<BulkStatus>(), Ok(*s));
        }
        assert!(BulkStatus::Completed.is_finished() && BulkStatus::Failed.is_finished());
        assert!(!BulkStatus::Pending.is_finished() && !BulkStatus::Running.is_finished());
        assert!("done".parse::<BulkStatus>().is_err());
    }
}

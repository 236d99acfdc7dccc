//! [`ReportLedger`] in memory: a big report's consolidated segments.

use async_trait::async_trait;

use super::store::{fits_an_item, json_len, lock, InMemoryJobStore};
use crate::job::JobId;
use crate::ports::{ReportLedger, SegmentRecord};
use crate::Result;

#[async_trait]
impl ReportLedger for InMemoryJobStore {
    async fn record_segment(&self, id: &JobId, segment: &SegmentRecord) -> Result<bool> {
        fits_an_item("PutItem segment", json_len(segment))?;
        let mut s = lock(&self.state);
        let segments = s.segments.entry(id.clone()).or_default();
        if segments.contains_key(&segment.index) {
            return Ok(false);
        }
        segments.insert(segment.index, segment.clone());
        Ok(true)
    }

    async fn segments_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<SegmentRecord>> {
        let s = lock(&self.state);
        let Some(segments) = s.segments.get(id) else { return Ok(Vec::new()) };
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(segments.range((from, std::ops::Bound::Unbounded)).take(limit).map(|(_, c)| c.clone()).collect())
    }
}

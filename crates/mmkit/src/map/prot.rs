//! Which protection each page of a mapping has, so that copies in and out can refuse an
//! access the pages do not allow (an `Err`) instead of taking a SIGSEGV.
//!
//! The map is a sorted list of spans, each running from its start page to the next span's
//! start (the last to the end). Neighbouring spans never have the same protection.

use super::Protection;

#[derive(Debug, Clone)]
pub(crate) struct ProtMap {
    /// Invariant: non-empty when `pages > 0`, sorted by start, first start is 0,
    /// every start `< pages`, and no two neighbours share a protection.
    spans: Vec<(usize, Protection)>,
    pages: usize,
}

impl ProtMap {
    pub(crate) fn new(pages: usize, prot: Protection) -> ProtMap {
        let spans = if pages == 0 {
            Vec::new()
        } else {
            vec![(0, prot)]
        };
        ProtMap { spans, pages }
    }

    /// Set pages `[start, end)` to `prot`.
    pub(crate) fn set(&mut self, start: usize, end: usize, prot: Protection) {
        let end = end.min(self.pages);
        if start >= end {
            return;
        }
        let after = self.at(end.min(self.pages - 1));
        let mut spans: Vec<(usize, Protection)> = Vec::with_capacity(self.spans.len() + 2);
        for &(s, p) in self.spans.iter().filter(|&&(s, _)| s < start) {
            spans.push((s, p));
        }
        spans.push((start, prot));
        if end < self.pages {
            spans.push((end, after));
        }
        spans.extend(self.spans.iter().copied().filter(|&(s, _)| s > end));
        spans.dedup_by(|next, prev| next.1 == prev.1);
        self.spans = spans;
    }

    /// The protection of page `page`.
    pub(crate) fn at(&self, page: usize) -> Protection {
        let i = self.spans.partition_point(|&(s, _)| s <= page);
        self.spans[i - 1].1
    }

    /// The protection of every page, when they all have the same (the common case).
    #[inline]
    pub(crate) fn uniform(&self) -> Option<Protection> {
        match self.spans[..] {
            [(_, only)] => Some(only),
            _ => None,
        }
    }

    /// Whether every page of `[start, end)` allows `need`.
    pub(crate) fn allows(&self, start: usize, end: usize, need: Protection) -> bool {
        if start >= end {
            return true;
        }
        if let Some(only) = self.uniform() {
            return only.contains(need);
        }
        let first = self.spans.partition_point(|&(s, _)| s <= start) - 1;
        self.spans[first..]
            .iter()
            .take_while(|&&(s, _)| s < end)
            .all(|&(_, p)| p.contains(need))
    }

    /// The mapping now has `pages` pages; new pages take the protection of the last one
    /// (as `mremap` extends the last area).
    pub(crate) fn resize(&mut self, pages: usize, fresh: Protection) {
        let last = if self.pages == 0 {
            fresh
        } else {
            self.at(self.pages - 1)
        };
        self.spans.retain(|&(s, _)| s < pages);
        if self.spans.is_empty() && pages > 0 {
            self.spans.push((0, last));
        }
        self.pages = pages;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const R: Protection = Protection::READ;
    const RW: Protection = Protection::READ_WRITE;
    const N: Protection = Protection::NONE;

    #[test]
    fn set_middle_then_query() {
        let mut m = ProtMap::new(10, RW);
        m.set(3, 5, R);
        assert!(m.allows(0, 3, RW));
        assert!(!m.allows(2, 4, RW));
        assert!(m.allows(3, 5, R));
        assert!(m.allows(5, 10, RW));
        m.set(0, 10, RW);
        assert_eq!(m.spans.len(), 1);
    }

    #[test]
    fn resize_keeps_last_protection() {
        let mut m = ProtMap::new(4, RW);
        m.set(2, 4, N);
        m.resize(8, RW);
        assert_eq!(m.at(7), N);
        m.resize(2, RW);
        assert!(m.allows(0, 2, RW));
    }

    proptest! {
        /// The span list agrees with a plain per-page vector after any sequence of sets.
        #[test]
        fn matches_per_page_model(ops in proptest::collection::vec((0usize..20, 0usize..20, 0u8..4), 0..30)) {
            let prots = [N, R, RW, Protection::READ | Protection::EXEC];
            let mut m = ProtMap::new(16, RW);
            let mut model = [RW; 16];
            for (a, b, p) in ops {
                let (s, e) = (a.min(b), a.max(b));
                m.set(s, e, prots[p as usize]);
                for page in model.iter_mut().take(e.min(16)).skip(s) {
                    *page = prots[p as usize];
                }
                for (i, want) in model.iter().enumerate() {
                    prop_assert_eq!(m.at(i), *want);
                }
                prop_assert!(m.spans.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1));
            }
        }
    }
}

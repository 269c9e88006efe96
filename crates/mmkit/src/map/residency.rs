//! [`Residency`]: which pages of a range are in memory, as `mincore` reports.

/// Which pages of a range are resident (in RAM, not swapped out or evicted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Residency {
    page_size: usize,
    /// One byte per page, 1 when resident.
    pages: Vec<u8>,
}

impl Residency {
    pub(crate) fn new(page_size: usize, pages: Vec<u8>) -> Residency {
        Residency { page_size, pages }
    }

    /// The number of pages the range covers.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    /// The number of resident pages.
    pub fn resident(&self) -> usize {
        self.pages.iter().filter(|&&b| b == 1).count()
    }

    /// Resident bytes (resident pages times the page size).
    pub fn resident_bytes(&self) -> u64 {
        self.resident() as u64 * self.page_size as u64
    }

    /// Whether page `i` of the range is resident.
    pub fn is_resident(&self, i: usize) -> bool {
        self.pages.get(i) == Some(&1)
    }

    /// The page size the counts are in.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Each page's residency, in order.
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        self.pages.iter().map(|&b| b == 1)
    }
}

//! Per-client checks of the event stream: every member must see every
//! event of its match once, in `seq` order, with no gap.

/// What a client has seen of one match's `seq` numbers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeqCheck {
    last: Option<u64>,
    pub missing: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
}

impl SeqCheck {
    /// Starts after `joined` (whose `seq` is the last event already in the snapshot).
    pub fn starting_at(seq: u64) -> Self {
        Self {
            last: Some(seq),
            ..Self::default()
        }
    }

    /// One event (or `ended`) with `seq`.
    pub fn observe(&mut self, seq: u64) {
        match self.last {
            None => self.last = Some(seq),
            Some(last) if seq == last + 1 => self.last = Some(seq),
            Some(last) if seq > last + 1 => {
                self.missing += seq - last - 1;
                self.last = Some(seq);
            }
            Some(last) if seq == last => self.duplicates += 1,
            Some(_) => self.out_of_order += 1,
        }
    }

    /// The last `seq` seen, what a `resume` asks to continue after.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    pub fn errors(&self) -> u64 {
        self.missing + self.duplicates + self.out_of_order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_duplicates_and_reordering() {
        let mut c = SeqCheck::starting_at(3);
        for s in [4, 5, 6] {
            c.observe(s);
        }
        assert_eq!(c.errors(), 0);
        c.observe(9); // 7 and 8 missing
        c.observe(9); // duplicate
        c.observe(8); // late
        c.observe(10);
        assert_eq!((c.missing, c.duplicates, c.out_of_order), (2, 1, 1));
        assert_eq!(c.errors(), 4);
    }
}

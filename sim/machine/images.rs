//! Which program image owns each host-physical page, at which virtualization level, and the
//! function symbols inside it. Decoding looks the symbol of every instruction up once, so
//! level and symbol attribution is structural and exact, never guessed.

/// A function (or region) inside an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Host-physical start and end (exclusive).
    pub start: u64,
    pub end: u64,
    pub name: String,
}

/// A loaded program image.
#[derive(Clone, Debug)]
pub struct Image {
    pub name: String,
    /// The virtualization level whose code this is (0 for the outermost software).
    pub level: u32,
    /// Host-physical ranges (start, end exclusive) the image occupies.
    pub ranges: Vec<(u64, u64)>,
    pub symbols: Vec<Symbol>,
}

/// A profile row's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolId {
    pub level: u32,
    pub name: String,
}

/// The images of a machine and the flat table of symbol identities profiles index.
#[derive(Clone, Debug)]
pub struct ImageMap {
    images: Vec<Image>,
    /// Row identities; 0 is code outside every image, then fixed rows, then symbols.
    pub ids: Vec<SymbolId>,
    /// (start, end, id) sorted by start, over every symbol and every image range.
    index: Vec<(u64, u64, u32)>,
}

/// Row for code outside every image.
pub const UNKNOWN: u32 = 0;
/// Row for exception and interrupt delivery by the hardware.
pub const EXCEPTION: u32 = 1;
/// Row for time spent halted when no HLT instruction put the processor there (a VM entry
/// into the HLT activity state); a HLT instruction's halted time goes to its own row.
pub const HALTED: u32 = 2;

impl Default for ImageMap {
    fn default() -> Self {
        ImageMap {
            images: Vec::new(),
            ids: vec![
                SymbolId { level: 0, name: "[unknown]".into() },
                SymbolId { level: 0, name: "[exception]".into() },
                SymbolId { level: 0, name: "[halted]".into() },
            ],
            index: Vec::new(),
        }
    }
}

impl ImageMap {
    /// Adds an image; code in its ranges but outside its symbols is attributed to
    /// "[NAME]".
    pub fn add(&mut self, image: Image) {
        let whole = self.ids.len() as u32;
        self.ids.push(SymbolId { level: image.level, name: format!("[{}]", image.name) });
        for &(s, e) in &image.ranges {
            self.index.push((s, e, whole));
        }
        for sym in &image.symbols {
            let id = self.ids.len() as u32;
            self.ids.push(SymbolId { level: image.level, name: sym.name.clone() });
            self.index.push((sym.start, sym.end, id));
        }
        // Symbols sort before the image range that contains them (narrower first).
        self.index.sort_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
        self.images.push(image);
    }

    pub fn images(&self) -> &[Image] {
        &self.images
    }

    /// The row of the innermost region containing `pa`.
    pub fn lookup(&self, pa: u64) -> u32 {
        // The last region starting at or before pa that contains it, preferring the
        // narrowest (symbols over whole images).
        let upto = self.index.partition_point(|&(s, _, _)| s <= pa);
        let mut best: Option<(u64, u32)> = None;
        for &(s, e, id) in self.index[..upto].iter().rev() {
            if pa < e {
                let width = e - s;
                if best.is_none_or(|(w, _)| width < w) {
                    best = Some((width, id));
                }
            }
            // No region starting this early can be narrower than the best one found.
            if best.is_some_and(|(w, _)| pa - s >= w) {
                break;
            }
        }
        best.map_or(UNKNOWN, |(_, id)| id)
    }

    /// The level of the image owning `pa`, if any.
    pub fn level_at(&self, pa: u64) -> Option<u32> {
        let id = self.lookup(pa);
        (id != UNKNOWN).then(|| self.ids[id as usize].level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_region_wins() {
        let mut m = ImageMap::default();
        m.add(Image {
            name: "kvm".into(),
            level: 1,
            ranges: vec![(0x1000, 0x9000)],
            symbols: vec![
                Symbol { start: 0x2000, end: 0x2100, name: "handle_cpuid".into() },
                Symbol { start: 0x2100, end: 0x2400, name: "vmx_vcpu_run".into() },
            ],
        });
        let name = |pa| m.ids[m.lookup(pa) as usize].name.clone();
        assert_eq!(name(0x2050), "handle_cpuid");
        assert_eq!(name(0x2100), "vmx_vcpu_run");
        assert_eq!(name(0x3000), "[kvm]");
        assert_eq!(name(0x9000), "[unknown]");
        assert_eq!(m.level_at(0x2050), Some(1));
        assert_eq!(m.level_at(0x10), None);
    }
}

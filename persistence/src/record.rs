//! Record framing: a value is its body followed by the CRC-32C of the body
//! (u32 LE). A reader checks the checksum before it reads a field, and
//! every field read is bounds-checked.

use crate::error::Problem;

pub fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let checksum = crc32c::crc32c(&body);
    body.extend_from_slice(&checksum.to_le_bytes());
    body
}

/// The body of a sealed value, after checking its checksum.
pub fn open(value: &[u8]) -> Result<&[u8], Problem> {
    if value.len() < 4 {
        return Err(Problem::Malformed(format!("{} bytes, shorter than a checksum", value.len())));
    }
    let (body, trailer) = value.split_at(value.len() - 4);
    let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(Problem::Checksum { stored, computed });
    }
    Ok(body)
}

#[derive(Debug, Default)]
pub struct Out(pub Vec<u8>);

impl Out {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    pub fn u64s(&mut self, v: &[u64]) {
        self.u32(v.len() as u32);
        for x in v {
            self.u64(*x);
        }
    }
}

#[derive(Debug)]
pub struct In<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> In<'a> {
    pub fn new(bytes: &'a [u8]) -> In<'a> {
        In { bytes, at: 0 }
    }
    fn take(&mut self, len: usize) -> Result<&'a [u8], Problem> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| Problem::Malformed(format!("truncated at byte {}: needed {len} more of {}", self.at, self.bytes.len())))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    pub fn u8(&mut self) -> Result<u8, Problem> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, Problem> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, Problem> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], Problem> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    pub fn u64s(&mut self) -> Result<Vec<u64>, Problem> {
        let count = self.u32()? as usize;
        if count > (self.bytes.len() - self.at) / 8 {
            return Err(Problem::Malformed(format!("a list of {count} numbers at byte {} overruns the record", self.at)));
        }
        (0..count).map(|_| self.u64()).collect()
    }
    pub fn finish(&self) -> Result<(), Problem> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(Problem::Malformed(format!("{} trailing bytes", self.bytes.len() - self.at)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_bit_or_a_cut_is_caught() {
        let sealed = seal(b"hello".to_vec());
        assert_eq!(open(&sealed), Ok(&b"hello"[..]));
        for at in 0..sealed.len() {
            let mut damaged = sealed.clone();
            damaged[at] ^= 0x10;
            assert!(matches!(open(&damaged), Err(Problem::Checksum { .. })), "byte {at}");
        }
        for len in 0..sealed.len() {
            assert!(open(&sealed[..len]).is_err(), "cut to {len}");
        }
    }

    #[test]
    fn reads_are_bounded() {
        let mut out = Out::default();
        out.u32(u32::MAX);
        assert!(In::new(&out.0).bytes().is_err());
        assert!(In::new(&out.0).u64s().is_err());
    }
}

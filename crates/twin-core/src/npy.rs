//! NumPy `.npy` files of little-endian f32: how preprocessed tensors and embeddings cross
//! from Rust to Python (training, golden tests) and back, without a second implementation
//! of preprocessing on the Python side.

use std::io::{self, Write};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Writes `data` with `shape` as a version 1.0 `.npy` file of `<f4`.
///
/// ```
/// let mut bytes = Vec::new();
/// twin_core::npy::write_f32(&mut bytes, &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
/// let (shape, data) = twin_core::npy::read_f32(&bytes).unwrap();
/// assert_eq!((shape, data), (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
/// ```
pub fn write_f32(mut out: impl Write, shape: &[usize], data: &[f32]) -> io::Result<()> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "npy shape {shape:?} holds {expected} values, got {}",
                data.len()
            ),
        ));
    }
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "npy shape too long"))?;

    out.write_all(MAGIC)?;
    out.write_all(&[1, 0])?;
    out.write_all(&header_len.to_le_bytes())?;
    out.write_all(header.as_bytes())?;
    let mut body = Vec::with_capacity(data.len() * 4);
    for v in data {
        body.extend_from_slice(&v.to_le_bytes());
    }
    out.write_all(&body)
}

/// Reads a C-order `.npy` file of `<f4` (version 1 or 2); returns shape and values.
pub fn read_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not an .npy file (bad magic)".to_owned());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(header_start..header_start + header_len)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "npy header is not text")?;
    if !header.contains("'descr': '<f4'") {
        return Err(format!(
            "expected little-endian f32 ('<f4'), header is {header}"
        ));
    }
    if header.contains("'fortran_order': True") {
        return Err("fortran-ordered .npy files are not supported".to_owned());
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|s| s.trim().strip_prefix('('))
        .ok_or_else(|| format!("no shape in npy header {header}"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad npy dimension {s:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("npy shape overflows")?;
    let body = &bytes[header_start + header_len..];
    if body.len() != count * 4 {
        return Err(format!(
            "npy shape {shape:?} needs {} bytes of data, file has {}",
            count * 4,
            body.len()
        ));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_shape_and_bits() {
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.1 - 1.0).collect();
        let mut bytes = Vec::new();
        write_f32(&mut bytes, &[2, 3, 4], &data).expect("write");
        let header_end = 10 + usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!(header_end % 64, 0);
        assert_eq!(read_f32(&bytes).expect("read"), (vec![2, 3, 4], data));
    }

    #[test]
    fn one_dimensional_shape_has_trailing_comma() {
        let mut bytes = Vec::new();
        write_f32(&mut bytes, &[3], &[1.0, 2.0, 3.0]).expect("write");
        let text = String::from_utf8_lossy(&bytes[10..]);
        assert!(text.contains("'shape': (3,)"), "{text}");
        assert_eq!(read_f32(&bytes).expect("read").0, vec![3]);
    }

    #[test]
    fn mismatched_shape_is_refused() {
        assert!(write_f32(Vec::new(), &[2, 2], &[1.0]).is_err());
        assert!(read_f32(b"hello world").is_err());
    }
}

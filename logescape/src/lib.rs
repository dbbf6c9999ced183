//! dockerd's json-file escaping of a log line (see [`escape_json`]).

/// Appends `s` as the inside of a JSON string, escaped as dockerd's
/// json-file writer does (`<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes
/// too), so our files are byte for byte what Docker tooling expects. Runs
/// of plain bytes are copied whole: a container writing binary output
/// (NULs become six bytes each) made this the shim's hottest loop.
pub fn escape_json(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let run = i;
        while i < bytes.len() && !NEEDS_ESCAPE[bytes[i] as usize] {
            i += 1;
        }
        out.extend_from_slice(&bytes[run..i]);
        let Some(&b) = bytes.get(i) else { break };
        i += 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
            0xe2 => match bytes.get(i..i + 2) {
                Some([0x80, last @ (0xa8 | 0xa9)]) => {
                    out.extend_from_slice(if *last == 0xa8 {
                        b"\\u2028"
                    } else {
                        b"\\u2029"
                    });
                    i += 2;
                }
                _ => out.push(b),
            },
            _ if b < 0x20 => {
                // A run of control bytes (binary output is mostly NULs):
                // six bytes each, written without a capacity check per byte.
                let run = bytes[i - 1..]
                    .iter()
                    .position(|&c| c >= 0x20 || matches!(c, b'\n' | b'\r' | b'\t'))
                    .unwrap_or(bytes.len() - (i - 1));
                let at = out.len();
                out.resize(at + 6 * run, 0);
                for (dst, &c) in out[at..]
                    .chunks_exact_mut(6)
                    .zip(&bytes[i - 1..i - 1 + run])
                {
                    dst.copy_from_slice(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[(c >> 4) as usize],
                        HEX[(c & 0xf) as usize],
                    ]);
                }
                i += run - 1;
            }
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
    }
}

/// The bytes [`escape_json`] does not copy as they are.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xe2] = true;
    t
};

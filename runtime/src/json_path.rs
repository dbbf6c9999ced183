//! Where in a JSON document an error happened, as a field path
//! (`process.user.uid`, `linux.namespaces[0].type`), found by scanning the
//! raw bytes up to serde_json's error position. A deserializer wrapper that
//! tracks the path (serde_path_to_error) instantiates the whole OCI spec's
//! deserialization a second time: a third of a megabyte of code mapped into
//! every runtime process, for the rare config that is wrong.

enum Frame {
    /// An object: the key whose value is being read, once one was seen.
    Object { key: Option<String>, want_key: bool },
    /// An array: the index of the element being read, once one began.
    Array { index: usize, began: bool },
}

/// The path of the value being read at byte `offset` of `data`: empty at
/// the top level.
pub fn at(data: &[u8], offset: usize) -> String {
    let data = &data[..offset.min(data.len())];
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    // A value begins: an array notes that its element is under way.
    fn value_begins(stack: &mut [Frame]) {
        if let Some(Frame::Array { began, .. }) = stack.last_mut() {
            *began = true;
        }
    }
    while i < data.len() {
        match data[i] {
            b'{' => {
                value_begins(&mut stack);
                stack.push(Frame::Object {
                    key: None,
                    want_key: true,
                });
            }
            b'[' => {
                value_begins(&mut stack);
                stack.push(Frame::Array {
                    index: 0,
                    began: false,
                });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { want_key, .. }) => *want_key = true,
                Some(Frame::Array { index, began }) => {
                    *index += 1;
                    *began = false;
                }
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { want_key, .. }) = stack.last_mut() {
                    *want_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < data.len() && data[i] != b'"' {
                    i += if data[i] == b'\\' { 2 } else { 1 };
                }
                let text = &data[start..i.min(data.len())];
                match stack.last_mut() {
                    Some(Frame::Object { key, want_key }) if *want_key => {
                        *key = Some(unescape(text));
                    }
                    _ => value_begins(&mut stack),
                }
            }
            b if !b.is_ascii_whitespace() => value_begins(&mut stack),
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for f in &stack {
        match f {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Array { index, began: true } => path.push_str(&format!("[{index}]")),
            _ => break,
        }
    }
    path
}

/// A key as written, its escapes read (a key with a bad escape is shown
/// as written).
fn unescape(raw: &[u8]) -> String {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted)
        .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned())
}

/// The byte offset of serde_json's error position (1-based line; column:
/// bytes of that line read).
pub fn offset(data: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match memchr_newline(&data[start..]) {
            Some(n) => start += n + 1,
            None => return data.len(),
        }
    }
    start + column
}

fn memchr_newline(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path serde_json's error in deserializing `json` as `T` points at.
    fn path_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        let e = serde_json::from_str::<T>(json).unwrap_err();
        at(
            json.as_bytes(),
            offset(json.as_bytes(), e.line(), e.column()),
        )
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Process {
        user: User,
        args: Vec<String>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct User {
        uid: u32,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Spec {
        process: Process,
        #[serde(default)]
        mounts: Vec<User>,
    }

    #[test]
    fn a_type_error_is_placed_at_its_field() {
        let p = path_of::<Spec>(r#"{"process": {"user": {"uid": "root"}, "args": []}}"#);
        assert_eq!(p, "process.user.uid");
        let p = path_of::<Spec>(r#"{"process": {"user": {"uid": 0}, "args": ["a", 7]}}"#);
        assert_eq!(p, "process.args[1]");
        let p = path_of::<Spec>(
            "{\n  \"process\": {\"user\": {\"uid\": 0}, \"args\": []},\n  \"mounts\": [{\"uid\": 1}, {\"uid\": -1}]\n}",
        );
        assert_eq!(p, "mounts[1].uid");
    }

    #[test]
    fn a_missing_field_is_placed_at_its_object() {
        let p = path_of::<Spec>(r#"{"process": {"user": {"uid": 0}}}"#);
        assert_eq!(p, "process");
    }

    #[test]
    fn keys_with_escapes_and_strings_with_brackets_do_not_mislead() {
        let p = path_of::<Spec>(r#"{"x": "a]}\"{[", "process": {"user": {"uid": true}}}"#);
        assert_eq!(p, "process.user.uid");
        assert_eq!(at(br#"{"a\"b": {"c": 1"#, 16), "a\"b.c");
    }

    #[test]
    fn the_top_level_has_no_path() {
        assert_eq!(at(b"  ", 2), "");
        assert_eq!(at(b"{", 1), "");
    }
}

//! Finding the program to run, with runc's error texts: the Docker CLI turns
//! "executable file not found" and "no such file or directory" into exit status
//! 127 and "permission denied" into 126.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn check(path: &Path) -> Result<(), std::io::Error> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EACCES));
    }
    Ok(())
}

fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Resolves `arg0` against `PATH` from the process environment, in the current
/// root (call it after pivot_root and chdir). A process whose environment has
/// no PATH finds nothing there, as runc's lookup (a container run with
/// `-e PATH` unset fails as Docker's does).
pub fn find(arg0: &str, env: &[String]) -> Result<CString, String> {
    let to_c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("exec: {arg0:?}: contains NUL"))
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match check(&p) {
            Ok(()) => to_c(&p),
            // Go's LookPath: a missing file is the stat's error, one that
            // is there but cannot be run is a bare "permission denied".
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                Err(format!("exec: {arg0:?}: stat {arg0}: {}", describe(&e)))
            }
            Err(e) => Err(format!("exec: {arg0:?}: {}", describe(&e))),
        };
    }
    // An empty PATH is no directory at all, as Go's SplitList reads it.
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .filter(|p| !p.is_empty());
    let mut denied = false;
    for dir in path.into_iter().flat_map(|p| p.split(':')) {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        match check(&candidate) {
            Ok(()) => return to_c(&candidate),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => denied = true,
            Err(_) => {}
        }
    }
    if denied {
        return Err(format!("exec: {arg0:?}: permission denied"));
    }
    Err(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path_and_words_errors_like_runc() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find("sh", &env).is_ok());
        let e = find("definitely-not-a-program", &env).unwrap_err();
        assert!(e.contains("executable file not found in $PATH"), "{e}");
        let e = find("/no/such/file", &env).unwrap_err();
        assert_eq!(
            e,
            r#"exec: "/no/such/file": stat /no/such/file: no such file or directory"#
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "x").unwrap();
        let e = find(plain.to_str().unwrap(), &env).unwrap_err();
        assert_eq!(
            e,
            format!("exec: {:?}: permission denied", plain.display().to_string())
        );
        let e = find("sh", &[]).unwrap_err();
        assert!(e.contains("executable file not found in $PATH"), "{e}");
    }
}

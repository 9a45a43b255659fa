//! Rater tokens of a relevance study: who may rate, so that a rating is one known person's and
//! nobody can rate under another's name or flood the study with made-up raters.
//!
//! The file holds one rater a line, `NAME SHA256`, the hex digest of the rater's token (the
//! token itself is shown once, by `unisight study add-rater`, and never stored); `#` starts a
//! comment. The service maps a presented token to its rater's name.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Longest rater name.
const MAX_NAME: usize = 128;

/// The raters of a study, by the digest of their tokens.
#[derive(Debug, Clone, Default)]
pub struct RaterTokens {
    by_digest: HashMap<[u8; 32], String>,
}

impl RaterTokens {
    /// Reads a rater file.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Manifest`] naming the line of a malformed entry or of a name or
    /// digest given twice.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |line: usize, what: String| Error::Manifest {
            path: path.into(),
            line,
            what,
        };
        let mut by_digest = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let mut fields = entry.split_whitespace();
            let (Some(name), Some(hex), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad(line_no, "expected `NAME SHA256-OF-TOKEN`".into()));
            };
            check_name(name).map_err(|what| bad(line_no, what))?;
            let digest = parse_digest(hex)
                .ok_or_else(|| bad(line_no, "the digest must be 64 hexadecimal digits".into()))?;
            if !names.insert(name.to_string()) {
                return Err(bad(line_no, format!("rater `{name}` is listed twice")));
            }
            if by_digest.insert(digest, name.to_string()).is_some() {
                return Err(bad(line_no, "this token's digest is listed twice".into()));
            }
        }
        Ok(RaterTokens { by_digest })
    }

    /// The rater whose token this is.
    pub fn rater_of(&self, token: &str) -> Option<&str> {
        self.by_digest
            .get(&<[u8; 32]>::from(Sha256::digest(token.as_bytes())))
            .map(String::as_str)
    }

    /// Raters listed.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether no rater is listed.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// Adds rater `name` to the rater file at `path` (created if missing, replaced atomically) with
/// a new random 128-bit token, and returns the token: the only time it is shown.
///
/// # Errors
/// A malformed file or name, a name already listed, I/O.
pub fn add_rater(path: &Path, name: &str) -> Result<String> {
    check_name(name).map_err(|what| Error::Input(format!("rater name: {what}")))?;
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# unisight study raters: NAME SHA256-OF-TOKEN (tokens from `unisight study add-rater`)\n"
                .to_string()
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let known = RaterTokens::parse(&text, path)?;
    if known.by_digest.values().any(|n| n == name) {
        return Err(Error::Input(format!(
            "rater `{name}` is already listed in {}",
            path.display()
        )));
    }
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex(&bytes);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let _ = writeln!(text, "{name} {}", hex(&Sha256::digest(token.as_bytes())));
    unisight_core::atomic::atomic_write_bytes(path, text.as_bytes())
        .map_err(|e| Error::Input(e.to_string()))?;
    Ok(token)
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("`{name}`: 1 to {MAX_NAME} bytes"));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(format!("`{name}`: no spaces, control characters or `#`"));
    }
    Ok(())
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_map_to_their_raters_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raters.txt");
        let ana = add_rater(&path, "ana").unwrap();
        let bo = add_rater(&path, "bo").unwrap();
        assert_ne!(ana, bo);
        assert_eq!(ana.len(), 32);
        let raters = RaterTokens::read(&path).unwrap();
        assert_eq!(raters.len(), 2);
        assert_eq!(raters.rater_of(&ana), Some("ana"));
        assert_eq!(raters.rater_of(&bo), Some("bo"));
        assert_eq!(raters.rater_of("ana"), None);
        assert_eq!(raters.rater_of(""), None);
        // the token is never stored
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&ana) && text.contains("ana "));
        let e = add_rater(&path, "ana").unwrap_err().to_string();
        assert!(e.contains("already listed"), "{e}");
        assert!(add_rater(&path, "two words").is_err());
    }

    #[test]
    fn a_malformed_rater_file_names_its_line() {
        let path = Path::new("raters.txt");
        let digest = "ab".repeat(32);
        let e = |text: &str| RaterTokens::parse(text, path).unwrap_err().to_string();
        assert!(e(&format!("# c\nana {digest}\nbo\n")).contains("line 3"));
        assert!(e("ana 12\n").contains("64 hexadecimal"));
        assert!(e(&format!("ana {digest}\nana {}\n", "cd".repeat(32))).contains("twice"));
        assert!(e(&format!("ana {digest}\nbo {digest}\n")).contains("line 2"));
        assert!(RaterTokens::parse(&format!("ana {digest} # lead\n\n"), path).is_ok());
    }
}

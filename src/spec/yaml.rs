//! Positions of YAML nodes, for diagnostics that name file:line:column.
//!
//! Owns [`YPath`] (a path such as `groups[0].rules[2].when`), [`SourceFile`]
//! (a file's text plus the diagnostics found in it) and two operations on a
//! document: [`SourceFile::extract`] deserializes the node at a path on its own
//! (so one broken rule does not hide the errors of the next), and
//! [`SourceFile::locate`] finds a node's line and column.
//!
//! How positions are found: yaml_serde attaches the position of the node being
//! deserialized to any error raised while deserializing it. To locate a node we
//! walk to it with a [`DeserializeSeed`] and make the node's visitor refuse every
//! value; the error's location is the node's start. A missing key or index
//! fails one level up, so the position falls back to the nearest existing
//! parent. This costs one re-parse per located error, which only happens on the
//! error path. Must not print or decide anything about what the nodes mean.
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};

/// One step of a [`YPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root to a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct YPath(Vec<Seg>);

impl YPath {
    pub fn root() -> Self {
        YPath(Vec::new())
    }

    /// This path extended by a mapping key.
    pub fn key(&self, k: &str) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        YPath(v)
    }

    /// This path extended by a sequence index.
    pub fn idx(&self, i: usize) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        YPath(v)
    }

    pub fn segments(&self) -> &[Seg] {
        &self.0
    }
}

impl fmt::Display for YPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One problem found in a config or rule file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The file as the user named it (relative paths stay relative).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// A YAML file being compiled, and the diagnostics collected for it.
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    pub diags: Vec<Diagnostic>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
            diags: Vec::new(),
        }
    }

    /// Read a file; an unreadable file is reported as a diagnostic at 1:1.
    pub fn read(path: &Path) -> Result<Self, Diagnostic> {
        std::fs::read_to_string(path)
            .map(|t| SourceFile::new(path, t))
            .map_err(|e| Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("cannot read file: {e}"),
            })
    }

    /// Line and column (1-based) of the node at `path`, or of its nearest parent.
    pub fn locate(&self, path: &YPath) -> (usize, usize) {
        match extract_from::<Probe>(&self.text, path) {
            Err(e) => e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1)),
            Ok(_) => (1, 1), // Probe never succeeds; kept total for safety
        }
    }

    /// Line and column of the *key* of the mapping entry at `path` (for errors
    /// about a name rather than its value). Falls back to the value's position
    /// when the key is not on the value's line (block values).
    pub fn locate_key(&self, path: &YPath) -> (usize, usize) {
        let (line, col) = self.locate(path);
        let Some(Seg::Key(key)) = path.segments().last() else {
            return (line, col);
        };
        let text = self.text.lines().nth(line.saturating_sub(1)).unwrap_or("");
        let before: String = text.chars().take(col.saturating_sub(1)).collect();
        match before.rfind(key.as_str()) {
            Some(byte) => (line, before[..byte].chars().count() + 1),
            None => (line, col),
        }
    }

    /// Position of the identifier `word` inside the scalar at `path`, when the
    /// scalar starts on a line that contains it (plain or quoted one-line
    /// values); otherwise the scalar's own position.
    pub fn locate_word(&self, path: &YPath, word: &str) -> (usize, usize) {
        let (line, col) = self.locate(path);
        let text = self.text.lines().nth(line.saturating_sub(1)).unwrap_or("");
        let start: usize = text
            .char_indices()
            .nth(col.saturating_sub(1))
            .map_or(text.len(), |(b, _)| b);
        let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let mut from = start;
        while let Some(off) = text[from..].find(word) {
            let b = from + off;
            let before_ok = !text[..b].chars().next_back().is_some_and(is_ident);
            let after_ok = !text[b + word.len()..].chars().next().is_some_and(is_ident);
            if before_ok && after_ok {
                return (line, text[..b].chars().count() + 1);
            }
            from = b + word.len();
        }
        (line, col)
    }

    /// Record an error about the key of the entry at `path`.
    pub fn key_error(&mut self, path: &YPath, message: impl Into<String>) {
        let (line, column) = self.locate_key(path);
        self.error_at(line, column, message);
    }

    /// Record an error about the node at `path`.
    pub fn error(&mut self, path: &YPath, message: impl Into<String>) {
        let (line, column) = self.locate(path);
        self.diags.push(Diagnostic {
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Record an error at a known position.
    pub fn error_at(&mut self, line: usize, column: usize, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Record a yaml_serde error (syntax, type, unknown field) with its own position.
    /// `what` prefixes the message (e.g. `rule "x"`), or is empty.
    pub fn yaml_error(&mut self, err: &serde_yaml::Error, fallback: &YPath, what: &str) {
        let (line, column) = match err.location() {
            Some(l) => (l.line(), l.column()),
            None => self.locate(fallback),
        };
        let mut msg = strip_position(&err.to_string());
        if !what.is_empty() {
            // yaml_serde prefixes the node's path; below a named thing
            // (`rule "x"`) the path up to that thing is noise.
            let base = fallback.to_string();
            if let Some(rest) = msg.strip_prefix(&format!("{base}: ")) {
                msg = rest.to_string();
            } else if let Some(rest) = msg.strip_prefix(&format!("{base}.")) {
                msg = rest.to_string();
            }
        }
        let message = if what.is_empty() {
            msg
        } else {
            format!("{what}: {msg}")
        };
        self.diags.push(Diagnostic {
            file: self.path.clone(),
            line,
            column,
            message,
        });
    }

    /// Deserialize just the node at `path`. Errors carry their own positions.
    pub fn extract<T: DeserializeOwned>(&self, path: &YPath) -> Result<T, serde_yaml::Error> {
        extract_from(&self.text, path)
    }

    /// Deserialize the node at `path`, recording any error; `None` if it failed.
    pub fn extract_or_report<T: DeserializeOwned>(
        &mut self,
        path: &YPath,
        what: &str,
    ) -> Option<T> {
        match self.extract(path) {
            Ok(v) => Some(v),
            Err(e) => {
                self.yaml_error(&e, path, what);
                None
            }
        }
    }
}

/// yaml_serde appends " at line L column C" to messages; we print the position
/// in front instead, so drop it from the text.
pub(super) fn strip_position(msg: &str) -> String {
    let mut out = msg.to_string();
    while let Some(i) = out.find(" at line ") {
        // " at line N column M"
        let tail = &out[i + " at line ".len()..];
        let n = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let Some(after) = tail[n..].strip_prefix(" column ") else {
            break;
        };
        let m = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        let end = i + " at line ".len() + n + " column ".len() + m;
        out.replace_range(i..end, "");
    }
    out
}

fn extract_from<T: DeserializeOwned>(text: &str, path: &YPath) -> Result<T, serde_yaml::Error> {
    let de = serde_yaml::Deserializer::from_str(text);
    AtPath::<T> {
        path: path.segments(),
        _t: PhantomData,
    }
    .deserialize(de)
}

/// A value that refuses to be deserialized from anything: its error marks a node.
struct Probe;

impl<'de> de::Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probe;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nothing (position probe)")
            }
        }
        d.deserialize_any(V)
    }
}

const NOT_FOUND: &str = "no such node";

struct AtPath<'p, T> {
    path: &'p [Seg],
    _t: PhantomData<T>,
}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for AtPath<'_, T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        match self.path.split_first() {
            None => T::deserialize(d),
            Some((Seg::Key(k), rest)) => d.deserialize_map(KeyVisitor::<T> {
                key: k,
                rest,
                _t: PhantomData,
            }),
            Some((Seg::Index(i), rest)) => d.deserialize_seq(IndexVisitor::<T> {
                index: *i,
                rest,
                _t: PhantomData,
            }),
        }
    }
}

struct KeyVisitor<'p, T> {
    key: &'p str,
    rest: &'p [Seg],
    _t: PhantomData<T>,
}

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for KeyVisitor<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a mapping with key {:?}", self.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut out = None;
        while let Some(k) = map.next_key::<serde_yaml::Value>()? {
            if out.is_none() && k.as_str() == Some(self.key) {
                out = Some(map.next_value_seed(AtPath::<T> {
                    path: self.rest,
                    _t: PhantomData,
                })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        out.ok_or_else(|| de::Error::custom(NOT_FOUND))
    }
}

struct IndexVisitor<'p, T> {
    index: usize,
    rest: &'p [Seg],
    _t: PhantomData<T>,
}

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for IndexVisitor<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence with at least {} items", self.index + 1)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(NOT_FOUND));
            }
        }
        let out = seq
            .next_element_seed(AtPath::<T> {
                path: self.rest,
                _t: PhantomData,
            })?
            .ok_or_else(|| de::Error::custom(NOT_FOUND))?;
        // yaml_serde insists that a visitor consumes the whole sequence.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a: 1\nb:\n  - x: hello\n    y: [1, 2]\n  - x: \"quoted\"\n    z: {k: v}\n";

    #[test]
    fn locates_nodes_and_falls_back_to_parent() {
        let f = SourceFile::new("t.yaml", DOC);
        assert_eq!(f.locate(&YPath::root().key("a")), (1, 4));
        assert_eq!(f.locate(&YPath::root().key("b").idx(0).key("x")), (3, 8));
        assert_eq!(
            f.locate(&YPath::root().key("b").idx(0).key("y").idx(1)),
            (4, 12)
        );
        assert_eq!(f.locate(&YPath::root().key("b").idx(1).key("x")), (5, 8));
        assert_eq!(
            f.locate(&YPath::root().key("b").idx(1).key("z").key("k")),
            (6, 12)
        );
        // missing key: the enclosing mapping (item 1 starts at line 5 col 5)
        assert_eq!(f.locate(&YPath::root().key("b").idx(1).key("nope")), (5, 5));
    }

    #[test]
    fn extracts_one_node() {
        let f = SourceFile::new("t.yaml", DOC);
        let v: Vec<u32> = f.extract(&YPath::root().key("b").idx(0).key("y")).unwrap();
        assert_eq!(v, vec![1, 2]);
        let e = f
            .extract::<u32>(&YPath::root().key("b").idx(0).key("x"))
            .unwrap_err();
        let l = e.location().unwrap();
        assert_eq!((l.line(), l.column()), (3, 8));
    }

    #[test]
    fn locates_words_inside_one_line_scalars() {
        let f = SourceFile::new("t.yaml", "when: rps > 5 && p98 > 1 && p9\nb: >-\n  p98\n");
        let p = YPath::root().key("when");
        assert_eq!(f.locate_word(&p, "p98"), (1, 18));
        assert_eq!(f.locate_word(&p, "p9"), (1, 29), "whole identifiers only");
        assert_eq!(f.locate_word(&p, "zz"), (1, 7));
        // block scalar: the word is not on the indicator's line
        assert_eq!(f.locate_word(&YPath::root().key("b"), "p98"), (2, 4));
    }

    #[test]
    fn path_display() {
        let p = YPath::root()
            .key("groups")
            .idx(0)
            .key("rules")
            .idx(2)
            .key("when");
        assert_eq!(p.to_string(), "groups[0].rules[2].when");
    }
}

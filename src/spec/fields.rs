//! Reading a YAML mapping into a raw struct without letting one error hide
//! the next.
//!
//! [`SourceFile::extract_all`] first tries the node as it is (the raw structs
//! deny unknown fields, so success means nothing is wrong with it). Only when
//! that fails is the node taken apart: every unknown field is reported at its
//! key, with a "did you mean" when it looks like a misspelt field; every field
//! of the wrong type is reported at its value; and the struct is built from
//! the fields that are left, so that the caller can still check what they
//! mean and report those errors too. Such a rebuilt struct only ever serves
//! to find more errors: the node already has one, so nothing loads it.
//!
//! The field names come from serde's derive itself ([`field_names`]), so they
//! cannot drift from the struct.
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_yaml::{Mapping, Value};

use super::yaml::{strip_position, Seg, SourceFile, YPath};

/// How similar (Jaro-Winkler, 0..1) an unknown name must be to a field to be
/// offered as "did you mean": `coldown` → `cooldown` is 0.93, `type` → `step` 0.72.
const SIMILAR: f64 = 0.8;

/// The closest of `candidates` to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score > SIMILAR)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The field names a struct with a derived `Deserialize` accepts, as written
/// in files (after `rename`). Empty for anything that is not such a struct.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The struct's visitor asks for `deserialize_struct` with its field list;
    // the probe records it and declines to produce a value.
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// The node of `doc` at `path`, if there is one.
pub fn node_at<'a>(doc: &'a Value, path: &YPath) -> Option<&'a Value> {
    let mut node = doc;
    for seg in path.segments() {
        node = match seg {
            Seg::Key(k) => node.as_mapping()?.get(k.as_str())?,
            Seg::Index(i) => node.as_sequence()?.get(*i)?,
        };
    }
    Some(node)
}

/// What [`SourceFile::extract_all`] could read.
#[derive(Debug)]
pub struct Extracted<T> {
    /// The struct: as written when `clean`, otherwise rebuilt from the fields
    /// that were fine. `None` when even that was impossible.
    pub value: Option<T>,
    /// Nothing was wrong with the node.
    pub clean: bool,
    /// When not `clean`: the node without its bad and unknown fields, for a
    /// caller that reads an enclosing node (`None` when nothing usable is left).
    pub node: Option<Value>,
    /// Fields reported as bad, and fields an unknown name was probably meant
    /// as: the caller should not also report them as missing.
    pub reported: BTreeSet<String>,
}

impl<T> Extracted<T> {
    /// Whether `field` was already reported (bad, or misspelt).
    pub fn reported(&self, field: &str) -> bool {
        self.reported.contains(field)
    }
}

/// How a diagnostic names the node: `what` is the thing it belongs to (`rule
/// "x"`, or empty at the top), `base` the node's path below that (`action`,
/// or empty for the thing itself).
#[derive(Debug, Clone, Copy)]
pub struct Naming<'a> {
    pub what: &'a str,
    pub base: &'a str,
}

impl Naming<'_> {
    /// `what: base: message` with the empty parts left out; `message_has_path`
    /// means the message starts with a path below `base` (`kind: …`).
    fn message(&self, message: &str, message_has_path: bool) -> String {
        let mut out = String::new();
        if !self.what.is_empty() {
            out.push_str(self.what);
            out.push_str(": ");
        }
        if !self.base.is_empty() {
            out.push_str(self.base);
            out.push_str(if message_has_path { "." } else { ": " });
        }
        out.push_str(message);
        out
    }
}

impl SourceFile {
    /// Read the mapping at `path` (also found as `doc`'s node there) into `T`,
    /// reporting every problem (see the module doc). `prepare` may first
    /// replace or remove nested blocks of the mapping it is given (after
    /// reading them with `extract_all` themselves); it runs only when the
    /// node has errors, and adds the fields it removed to the set.
    pub fn extract_all<T: DeserializeOwned>(
        &mut self,
        doc: &Value,
        path: &YPath,
        naming: Naming<'_>,
        prepare: impl FnOnce(&mut SourceFile, &mut Mapping, &mut BTreeSet<String>),
    ) -> Extracted<T> {
        let first_error = match self.extract::<T>(path) {
            Ok(v) => {
                return Extracted {
                    value: Some(v),
                    clean: true,
                    node: None,
                    reported: BTreeSet::new(),
                }
            }
            Err(e) => e,
        };
        let mut reported = BTreeSet::new();
        let Some(mut map) = node_at(doc, path).and_then(Value::as_mapping).cloned() else {
            // Not a mapping at all (or not found): serde's own error says so.
            self.yaml_error(&first_error, path, naming.what);
            return Extracted {
                value: None,
                clean: false,
                node: None,
                reported,
            };
        };
        let fields = field_names::<T>();
        let unknown: Vec<Value> = map
            .keys()
            .filter(|k| !k.as_str().is_some_and(|k| fields.contains(&k)))
            .cloned()
            .collect();
        for key in unknown {
            map.shift_remove(&key);
            let name = match &key {
                Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
            };
            // serde's own wording, so the message reads as for any other file.
            let mut message =
                <de::value::Error as de::Error>::unknown_field(&name, fields).to_string();
            if let Some(meant) = did_you_mean(&name, fields) {
                reported.insert(meant.to_string());
                message.push_str(&format!("; did you mean `{meant}`?"));
            }
            self.key_error(&path.key(&name), naming.message(&message, false));
        }
        prepare(self, &mut map, &mut reported);
        let value = self.read_fields::<T>(&mut map, path, naming, &mut reported);
        Extracted {
            value,
            clean: false,
            node: Some(Value::Mapping(map)),
            reported,
        }
    }

    /// Build `T` from `map`, reporting and removing each field serde refuses,
    /// until it builds or nothing more can be removed.
    fn read_fields<T: DeserializeOwned>(
        &mut self,
        map: &mut Mapping,
        path: &YPath,
        naming: Naming<'_>,
        reported: &mut BTreeSet<String>,
    ) -> Option<T> {
        // Each round removes one field, so this ends.
        for _ in 0..=map.len() {
            // Through YAML text, not `serde_yaml::from_value`: that refuses a
            // plain `8080` for a string field, which the text reader accepts.
            let text = serde_yaml::to_string(&Value::Mapping(map.clone())).ok()?;
            let err = match serde_path_to_error::deserialize::<_, T>(
                serde_yaml::Deserializer::from_str(&text),
            ) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            let mut at = path.clone();
            let mut top = None;
            for seg in err.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Map { key } => {
                        top.get_or_insert_with(|| key.clone());
                        at = at.key(key);
                    }
                    serde_path_to_error::Segment::Seq { index } => at = at.idx(*index),
                    _ => break,
                }
            }
            let message = strip_position(&err.inner().to_string());
            let Some(field) = top.filter(|f| map.contains_key(f.as_str())) else {
                // A problem of the mapping itself: a missing field. One that
                // was removed above as bad is already reported.
                let missing = message
                    .strip_prefix("missing field `")
                    .and_then(|m| m.split('`').next());
                if !missing.is_some_and(|m| reported.contains(m)) {
                    self.error(path, naming.message(&message, false));
                }
                return None;
            };
            self.error(&at, naming.message(&message, true));
            map.shift_remove(field.as_str());
            reported.insert(field);
        }
        None
    }
}

/// A deserializer that only records the field list a struct asks for.
struct FieldProbe<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field name probe")
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Declined
    }
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Declined> {
        *self.0 = fields;
        Err(Declined)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Block {
        name: String,
        #[serde(rename = "for")]
        for_: Option<String>,
        step: Option<u32>,
        kind: Option<Kind>,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        ScaleOut,
    }

    fn read(text: &str) -> (Extracted<Block>, Vec<String>) {
        let mut src = SourceFile::new("t.yaml", text);
        let doc: Value = serde_yaml::from_str(text).unwrap();
        let got = src.extract_all::<Block>(
            &doc,
            &YPath::root().key("b"),
            Naming {
                what: "block \"x\"",
                base: "",
            },
            |_, _, _| {},
        );
        (got, src.diags.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn field_names_come_from_serde() {
        assert_eq!(field_names::<Block>(), &["name", "for", "step", "kind"]);
        assert!(field_names::<String>().is_empty());
    }

    #[test]
    fn likely_typos_get_a_suggestion_and_others_do_not() {
        let fields = [
            "name",
            "cooldown",
            "when",
            "keep_firing_for",
            "step",
            "target",
        ];
        assert_eq!(did_you_mean("coldown", &fields), Some("cooldown"));
        assert_eq!(did_you_mean("whenn", &fields), Some("when"));
        assert_eq!(
            did_you_mean("keep_firing", &fields),
            Some("keep_firing_for")
        );
        assert_eq!(did_you_mean("type", &fields), None);
        assert_eq!(did_you_mean("severity", &fields), None);
    }

    #[test]
    fn a_clean_node_is_read_as_written() {
        let (got, diags) = read("b:\n  name: x\n  step: 2\n  for: 010\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert!(got.clean);
        // Read from the text: `010` stays as written.
        assert_eq!(got.value.unwrap().for_.as_deref(), Some("010"));
    }

    #[test]
    fn every_unknown_and_bad_field_is_reported_and_the_rest_is_kept() {
        let (got, diags) = read("b:\n  name: x\n  stpe: 2\n  for: [1]\n  kind: reboot\n  zzz: 1\n");
        assert_eq!(
            diags,
            [
                "t.yaml:3:3: block \"x\": unknown field `stpe`, expected one of `name`, `for`, `step`, `kind`; did you mean `step`?",
                "t.yaml:6:3: block \"x\": unknown field `zzz`, expected one of `name`, `for`, `step`, `kind`",
                "t.yaml:4:8: block \"x\": for: invalid type: sequence, expected a string",
                "t.yaml:5:9: block \"x\": kind: unknown variant `reboot`, expected `scale_out`",
            ]
        );
        assert!(!got.clean);
        assert_eq!(
            got.value,
            Some(Block {
                name: "x".into(),
                for_: None,
                step: None,
                kind: None
            })
        );
        for f in ["step", "for", "kind"] {
            assert!(got.reported(f), "{f}");
        }
        assert!(!got.reported("name"));
    }

    #[test]
    fn a_missing_field_is_reported_unless_it_was_removed_as_bad() {
        let (got, diags) = read("b:\n  step: 1\n");
        assert_eq!(diags, ["t.yaml:2:3: block \"x\": missing field `name`"]);
        assert!(got.value.is_none());
        let (got, diags) = read("b:\n  name: [1]\n");
        assert_eq!(
            diags,
            ["t.yaml:2:9: block \"x\": name: invalid type: sequence, expected a string"]
        );
        assert!(got.value.is_none());
    }

    #[test]
    fn a_node_that_is_not_a_mapping_gets_serdes_error() {
        let (got, diags) = read("b: 5\n");
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].contains("invalid type"), "{diags:?}");
        assert!(got.value.is_none() && got.node.is_none());
    }
}

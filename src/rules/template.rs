//! `{{ name }}` and `{{ labels.x }}` templates in annotations and `action.instance`.
//!
//! Parsed and checked at load time (unknown names are load errors); rendering
//! never fails: an absent label renders as the empty string.
use std::collections::BTreeMap;

use crate::model::Labels;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Query(String),
    Label(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse and check that every `{{ name }}` is one of `queries`.
    pub fn parse<'a>(
        text: &str,
        queries: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
            let name = after[..close].trim();
            if let Some(label) = name.strip_prefix("labels.") {
                if !crate::model::is_label_name(label) {
                    return Err(format!("{{{{ {name} }}}}: {label:?} is not a label name"));
                }
                parts.push(Part::Label(label.to_string()));
            } else if queries.clone().into_iter().any(|q| q == name) {
                parts.push(Part::Query(name.to_string()));
            } else {
                let known: Vec<&str> = queries.clone().into_iter().collect();
                return Err(format!(
                    "unknown template name {name:?} (use a query name: {}, or labels.<name>)",
                    if known.is_empty() {
                        "none defined".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Render with query values and instance labels.
    pub fn render(&self, values: &BTreeMap<String, f64>, labels: &Labels) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Query(q) => {
                    out.push_str(&format_value(values.get(q).copied().unwrap_or(f64::NAN)))
                }
                Part::Label(l) => out.push_str(labels.get(l).unwrap_or("")),
            }
        }
        out
    }
}

/// Numbers for people: integers without a fraction, others to 4 significant digits.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let digits = (4 - 1 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render() {
        let t = Template::parse("p99 {{ p99 }}s on {{labels.instance}}!", ["p99", "rps"]).unwrap();
        let vals = BTreeMap::from([("p99".to_string(), 0.31234)]);
        let l = Labels::new([("instance", "a:1")]);
        assert_eq!(t.render(&vals, &l), "p99 0.3123s on a:1!");
        assert_eq!(
            t.render(&BTreeMap::new(), &Labels::empty()),
            "p99 NaNs on !"
        );
    }

    #[test]
    fn unknown_names_and_unclosed_are_errors() {
        let e = Template::parse("{{ p98 }}", ["p99"]).unwrap_err();
        assert_eq!(
            e,
            "unknown template name \"p98\" (use a query name: p99, or labels.<name>)"
        );
        assert!(Template::parse("{{ p99", ["p99"])
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("{{ labels.a-b }}", ["p99"]).is_err());
    }

    #[test]
    fn values_for_people() {
        assert_eq!(format_value(12.0), "12");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1234.5678), "1235");
        assert_eq!(format_value(0.000123456), "0.0001235");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
    }
}

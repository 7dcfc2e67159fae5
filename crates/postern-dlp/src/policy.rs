//! The inspection policy (TOML, every key optional): weights, thresholds, the action each
//! detector forces, what to do with encrypted or oversized content, the organisation's MRN
//! formats and custom dictionaries.
//!
//! ```toml
//! on_encrypted = "quarantine"
//! [[threshold]]
//! min_score = 10
//! action = "quarantine"
//! [detector_action]
//! card = "block"
//! [[mrn]]
//! name = "st-marys"
//! pattern = '\bSM-?(\d{7})\b'
//! checksum = "luhn"
//! [[dictionary]]
//! name = "oncology"
//! words = ["chemotherapy", "metastatic"]
//! weight = 2
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::extract::Limits;
use crate::Detector;

/// What happens to a message, mildest first (the verdict takes the strongest that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Send it on.
    Allow,
    /// Send it on with a header saying what was found.
    Tag,
    /// Deliver through the portal instead of in clear.
    Portal,
    /// Hold it for review.
    Quarantine,
    /// Refuse it and tell the sender why.
    Block,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Tag => "tag",
            Action::Portal => "portal",
            Action::Quarantine => "quarantine",
            Action::Block => "block",
        })
    }
}

/// Check digit scheme of an MRN format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checksum {
    /// No check digit.
    #[default]
    None,
    /// Luhn (mod 10).
    Luhn,
    /// Mod 11 with weights 2.. from the right (`X` = 10).
    Mod11,
}

/// An organisation's medical record number format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MrnRule {
    /// Name in verdicts (`mrn:NAME`).
    pub name: String,
    /// Regex; the first capture group (if any) is the number that is checked and masked.
    pub pattern: String,
    /// Check digit.
    #[serde(default)]
    pub checksum: Checksum,
    /// Only count it near "MRN", "medical record" and the like (default true).
    #[serde(default = "yes")]
    pub require_keyword: bool,
}

fn yes() -> bool {
    true
}

/// A custom dictionary: words and/or regexes, each match adding `weight`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DictionaryRule {
    /// Name in verdicts (`dict:NAME`).
    pub name: String,
    /// Words or phrases (case-insensitive, whole words).
    #[serde(default)]
    pub words: Vec<String>,
    /// Regexes.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Score per match.
    #[serde(default = "one")]
    pub weight: f64,
    /// At least this action when it matches.
    #[serde(default)]
    pub action: Option<Action>,
}

fn one() -> f64 {
    1.0
}

/// A score threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// From this score...
    pub min_score: f64,
    /// ...at least this action.
    pub action: Action,
}

/// The whole policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DlpPolicy {
    /// Score per hit, by detector (`card`, `ssn`, `npi`, `dea`, `mbi`, `mrn`, `icd10`,
    /// `keyword`).
    pub weights: BTreeMap<Detector, f64>,
    /// Added per identifier that sits among clinical words or diagnosis codes.
    pub clinical_bonus: f64,
    /// Most that diagnosis codes and clinical keywords add (context, not identifiers).
    pub context_cap: f64,
    /// Score thresholds.
    pub threshold: Vec<Threshold>,
    /// The action any hit of a detector forces, whatever the score.
    pub detector_action: BTreeMap<Detector, Action>,
    /// Encrypted attachments (cannot be inspected).
    pub on_encrypted: Action,
    /// A limit stopped inspection.
    pub on_limit: Action,
    /// Parts that could not be parsed.
    pub on_unreadable: Action,
    /// Organisation MRN formats.
    pub mrn: Vec<MrnRule>,
    /// Custom dictionaries.
    pub dictionary: Vec<DictionaryRule>,
    /// Inspection limits.
    pub limits: Limits,
    /// Inspect mail to encryption partners too (it is encrypted anyway; default no).
    pub inspect_partner_mail: bool,
}

impl Default for DlpPolicy {
    fn default() -> Self {
        let weights = [
            (Detector::Card, 10.0),
            (Detector::Ssn, 10.0),
            (Detector::Mbi, 10.0),
            (Detector::Mrn(None), 8.0),
            (Detector::Npi, 2.0),
            (Detector::Dea, 2.0),
            (Detector::Icd10, 1.0),
            (Detector::Keyword, 0.5),
        ]
        .into_iter()
        .collect();
        let detector_action = [
            (Detector::Card, Action::Quarantine),
            (Detector::Ssn, Action::Quarantine),
            (Detector::Mbi, Action::Quarantine),
            (Detector::Mrn(None), Action::Quarantine),
        ]
        .into_iter()
        .collect();
        DlpPolicy {
            weights,
            clinical_bonus: 2.0,
            context_cap: 4.0,
            threshold: vec![
                Threshold {
                    min_score: 4.0,
                    action: Action::Tag,
                },
                Threshold {
                    min_score: 10.0,
                    action: Action::Quarantine,
                },
            ],
            detector_action,
            on_encrypted: Action::Quarantine,
            on_limit: Action::Quarantine,
            on_unreadable: Action::Tag,
            mrn: Vec::new(),
            dictionary: Vec::new(),
            limits: Limits::default(),
            inspect_partner_mail: false,
        }
    }
}

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Unreadable.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// Not valid (the message names the line).
    #[error("{0}: {1}")]
    Parse(String, String),
    /// A pattern does not compile.
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// Why a policy's patterns could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct PatternError {
    /// Which pattern.
    pub what: String,
    /// The compiler's message.
    pub message: String,
}

impl DlpPolicy {
    /// Parses policy TOML without compiling its patterns ([`DlpPolicy::from_toml`] does both).
    pub(crate) fn parse(text: &str) -> Result<Self, PolicyError> {
        // The message and line only: the full error quotes the offending line of the file.
        let parse_error = |e: toml::de::Error| {
            let line = e.span().map_or(0, |s| {
                text.get(..s.start).map_or(0, |t| t.lines().count().max(1))
            });
            PolicyError::Parse("policy".into(), format!("line {line}: {}", e.message()))
        };
        // What the file itself says for the merged tables (serde, not a text search).
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Given {
            weights: Option<BTreeMap<toml::Spanned<String>, f64>>,
            detector_action: Option<BTreeMap<toml::Spanned<String>, Action>>,
        }
        let given: Given = toml::from_str(text).map_err(parse_error)?;
        // A detector name the policy does not know is an error with its line: a misspelt
        // `credit_card = "block"` was silently ignored, and the card went out.
        // Checked before the policy itself is read, so the error names the table and the
        // rules an `mrn:NAME` may refer to (the typed read would only say "unknown").
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Rules {
            mrn: Vec<toml::Value>,
        }
        let rules: Rules = toml::from_str(text).map_err(parse_error)?;
        let mrn_names: Vec<&str> = rules
            .mrn
            .iter()
            .filter_map(|m| m.get("name").and_then(toml::Value::as_str))
            .collect();
        let known = |name: &str| match name.parse::<Detector>() {
            Ok(Detector::Mrn(Some(n))) => mrn_names.contains(&n.as_str()),
            Ok(Detector::Dict(_)) | Err(_) => false,
            Ok(_) => true,
        };
        let names = given
            .weights
            .iter()
            .flat_map(|m| m.keys().map(|k| ("weights", k)))
            .chain(
                given
                    .detector_action
                    .iter()
                    .flat_map(|m| m.keys().map(|k| ("detector_action", k))),
            );
        for (table, key) in names {
            if !known(key.get_ref()) {
                let line = text
                    .get(..key.span().start)
                    .map_or(0, |t| t.matches('\n').count() + 1);
                let hint = if key.get_ref().starts_with("dict:") {
                    "a dictionary's weight and action are set in its [[dictionary]] entry"
                        .to_string()
                } else {
                    let known: Vec<String> =
                        Detector::BUILT_IN.iter().map(|d| d.to_string()).collect();
                    format!(
                        "known: {}, and mrn:NAME for an [[mrn]] rule",
                        known.join(", ")
                    )
                };
                return Err(PolicyError::Parse(
                    "policy".into(),
                    format!(
                        "line {line}: unknown detector {:?} in {table} ({hint})",
                        key.get_ref()
                    ),
                ));
            }
        }
        let mut p: DlpPolicy = toml::from_str(text).map_err(parse_error)?;
        let d = DlpPolicy::default();
        p.weights = d.weights;
        p.weights.extend(
            given
                .weights
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| Some((k.into_inner().parse().ok()?, v))),
        );
        p.detector_action = d.detector_action;
        p.detector_action.extend(
            given
                .detector_action
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| Some((k.into_inner().parse().ok()?, v))),
        );
        Ok(p)
    }

    /// The policy in force, as TOML (every value, defaults included).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The weight of a detector (`mrn:x` → its own, else `mrn`'s; dictionaries carry their
    /// own).
    pub fn weight(&self, detector: &Detector) -> f64 {
        if let Detector::Dict(name) = detector {
            return self
                .dictionary
                .iter()
                .find(|d| d.name == *name)
                .map_or(1.0, |d| d.weight);
        }
        self.weights
            .get(detector)
            .or_else(|| self.weights.get(&detector.family()))
            .copied()
            .unwrap_or(1.0)
    }

    /// The action a hit of `detector` forces, if any.
    pub fn forced(&self, detector: &Detector) -> Option<Action> {
        if let Detector::Dict(name) = detector {
            return self
                .dictionary
                .iter()
                .find(|d| d.name == *name)
                .and_then(|d| d.action);
        }
        self.detector_action
            .get(detector)
            .or_else(|| self.detector_action.get(&detector.family()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_merges_over_defaults_and_checks_patterns() {
        let p = DlpPolicy::from_toml(
            "on_encrypted = \"tag\"\n[weights]\nnpi = 5\n[[mrn]]\nname = \"sm\"\npattern = '\\bSM(\\d{7})\\b'\nchecksum = \"luhn\"\n",
        )
        .unwrap();
        assert_eq!(p.weight(&Detector::Npi), 5.0);
        assert_eq!(p.weight(&Detector::Card), 10.0);
        assert_eq!(p.weight(&Detector::Mrn(Some("sm".into()))), 8.0);
        assert_eq!(
            p.forced(&Detector::Mrn(Some("sm".into()))),
            Some(Action::Quarantine)
        );
        assert_eq!(p.on_encrypted, Action::Tag);
        let e = DlpPolicy::from_toml("[[mrn]]\nname = \"x\"\npattern = '(('\n").unwrap_err();
        assert!(e.to_string().contains("mrn x"), "{e}");
        let e = DlpPolicy::from_toml("nonsense = 1\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    /// Issue 11: every TOML spelling means the same; detector actions merge as documented.
    #[test]
    fn any_toml_spelling_means_the_same() {
        for text in [
            "[detector_action]\nnpi = \"block\"\n[weights]\nnpi = 5\n[[threshold]]\nmin_score = 3\naction = \"portal\"\n",
            "detector_action = { npi = \"block\" }\nweights = { npi = 5 }\nthreshold = [{ min_score = 3, action = \"portal\" }]\n",
            "detector_action.npi = \"block\"\nweights.npi = 5\nthreshold = [{ min_score = 3, action = \"portal\" }]\n",
        ] {
            let p = DlpPolicy::from_toml(text).unwrap();
            assert_eq!(p.forced(&Detector::Npi), Some(Action::Block), "{text}");
            assert_eq!(p.forced(&Detector::Card), Some(Action::Quarantine), "merged: {text}");
            assert_eq!(p.weight(&Detector::Npi), 5.0, "{text}");
            assert_eq!(p.weight(&Detector::Ssn), 10.0, "{text}");
            assert_eq!(p.threshold.len(), 1, "{text}");
        }
        let p = DlpPolicy::from_toml("detector_action = { card = \"allow\" }\n").unwrap();
        assert_eq!(p.forced(&Detector::Card), Some(Action::Allow));
        // A detector the policy does not know: an error naming it and its line.
        let e =
            DlpPolicy::from_toml("[detector_action]\nssn = \"block\"\ncredit_card = \"block\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("line 3") && e.contains("credit_card"), "{e}");
        let e = DlpPolicy::from_toml("weights = { crad = 5.0 }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("crad"), "{e}");
        assert!(DlpPolicy::from_toml(
            "[[mrn]]\nname = \"sm\"\npattern = \"SM[0-9]{7}\"\n[detector_action]\n\"mrn:sm\" = \"block\"\n"
        )
        .is_ok());
        let e = DlpPolicy::from_toml("[detector_action]\ncard = \"blok\"\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let again = DlpPolicy::from_toml(&DlpPolicy::default().to_toml()).unwrap();
        assert_eq!(again.to_toml(), DlpPolicy::default().to_toml());
    }
}

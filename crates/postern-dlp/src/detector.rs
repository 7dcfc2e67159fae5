//! Which detector found something: a type, so that a policy or a caller naming a detector
//! that does not exist is an error, never a rule silently ignored (a misspelt
//! `credit_card = "block"` once let card numbers out). Written and read as the words policies
//! and verdicts use: `card`, `ssn`, `npi`, `dea`, `mbi`, `icd10`, `keyword`, `mrn` (every MRN
//! rule), `mrn:NAME`, `dict:NAME`.

use std::fmt;
use std::str::FromStr;

/// A detector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Detector {
    /// Payment card numbers (issuer prefix, length, Luhn).
    Card,
    /// US Social Security numbers.
    Ssn,
    /// National Provider Identifiers.
    Npi,
    /// DEA registration numbers.
    Dea,
    /// Medicare Beneficiary Identifiers.
    Mbi,
    /// ICD-10-CM diagnosis codes (context, not identifiers).
    Icd10,
    /// Clinical keywords (context, not identifiers).
    Keyword,
    /// The organisation's medical record numbers: one `[[mrn]]` rule by name, or (`None`)
    /// every rule, as a policy's `mrn` key means.
    Mrn(Option<String>),
    /// A custom `[[dictionary]]` by name.
    Dict(String),
}

impl Detector {
    /// The built-in detectors a policy may name in `weights` and `detector_action` (besides
    /// `mrn:NAME` for an `[[mrn]]` rule).
    pub const BUILT_IN: [Detector; 8] = [
        Detector::Card,
        Detector::Ssn,
        Detector::Npi,
        Detector::Dea,
        Detector::Mbi,
        Detector::Mrn(None),
        Detector::Icd10,
        Detector::Keyword,
    ];

    /// The policy key whose weight and action apply when this one has none of its own:
    /// `mrn` for `mrn:NAME`, itself otherwise.
    pub fn family(&self) -> Detector {
        match self {
            Detector::Mrn(Some(_)) => Detector::Mrn(None),
            other => other.clone(),
        }
    }

    /// Context signals (diagnosis codes, clinical keywords): they raise the score of
    /// identifiers near them, up to a cap, and are never identifiers themselves.
    pub fn is_context(&self) -> bool {
        match self {
            Detector::Icd10 | Detector::Keyword => true,
            Detector::Card
            | Detector::Ssn
            | Detector::Npi
            | Detector::Dea
            | Detector::Mbi
            | Detector::Mrn(_)
            | Detector::Dict(_) => false,
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detector::Card => f.write_str("card"),
            Detector::Ssn => f.write_str("ssn"),
            Detector::Npi => f.write_str("npi"),
            Detector::Dea => f.write_str("dea"),
            Detector::Mbi => f.write_str("mbi"),
            Detector::Icd10 => f.write_str("icd10"),
            Detector::Keyword => f.write_str("keyword"),
            Detector::Mrn(None) => f.write_str("mrn"),
            Detector::Mrn(Some(name)) => write!(f, "mrn:{name}"),
            Detector::Dict(name) => write!(f, "dict:{name}"),
        }
    }
}

/// A word that names no detector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown detector {0:?} (known: card, ssn, npi, dea, mbi, mrn, icd10, keyword, mrn:NAME, dict:NAME)")]
pub struct UnknownDetector(pub String);

impl FromStr for Detector {
    type Err = UnknownDetector;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named = |name: &str, make: fn(String) -> Detector| {
            if name.is_empty() {
                Err(UnknownDetector(s.to_string()))
            } else {
                Ok(make(name.to_string()))
            }
        };
        match s {
            "card" => Ok(Detector::Card),
            "ssn" => Ok(Detector::Ssn),
            "npi" => Ok(Detector::Npi),
            "dea" => Ok(Detector::Dea),
            "mbi" => Ok(Detector::Mbi),
            "icd10" => Ok(Detector::Icd10),
            "keyword" => Ok(Detector::Keyword),
            "mrn" => Ok(Detector::Mrn(None)),
            _ => {
                if let Some(n) = s.strip_prefix("mrn:") {
                    named(n, |n| Detector::Mrn(Some(n)))
                } else if let Some(n) = s.strip_prefix("dict:") {
                    named(n, Detector::Dict)
                } else {
                    Err(UnknownDetector(s.to_string()))
                }
            }
        }
    }
}

postern_core::serde_as_text!(Detector);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_misspellings_are_refused() {
        let mut all: Vec<Detector> = Detector::BUILT_IN.to_vec();
        all.push(Detector::Mrn(Some("st-marys".into())));
        all.push(Detector::Dict("oncology".into()));
        for d in all {
            assert_eq!(d.to_string().parse::<Detector>(), Ok(d));
        }
        for bad in ["credit_card", "Card", "ssn ", "mrn:", "dict:", ""] {
            assert!(bad.parse::<Detector>().is_err(), "{bad:?}");
        }
        assert_eq!(
            Detector::Mrn(Some("x".into())).family(),
            Detector::Mrn(None)
        );
    }
}

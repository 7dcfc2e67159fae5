//! Finding identifiers in text. One regex pass nominates candidates (digit runs with single
//! space or dash separators, letter-digit identifiers, ICD-10 codes, configured MRN patterns);
//! one Aho-Corasick pass finds keywords; validators and keyword proximity decide. Matched
//! values leave this module masked only.

pub mod checks;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

use crate::policy::{Checksum, DlpPolicy};

/// What a detector found, before scoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Detector id: `card`, `ssn`, `npi`, `dea`, `mbi`, `icd10`, `mrn:NAME`, `dict:NAME`.
    pub detector: String,
    /// The value, masked (last four shown).
    pub masked: String,
    /// Clinical keywords or diagnosis codes near it.
    pub clinical_context: bool,
}

/// Keyword groups; each keyword belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Card,
    Ssn,
    Npi,
    Dea,
    Mbi,
    Mrn,
    Clinical,
    /// Words that say a number is something else ("order", "tracking", "invoice").
    NotPhi,
}

const KEYWORDS: &[(&str, Group)] = &[
    ("card", Group::Card),
    ("credit card", Group::Card),
    ("visa", Group::Card),
    ("mastercard", Group::Card),
    ("amex", Group::Card),
    ("cvv", Group::Card),
    ("expiration", Group::Card),
    ("exp date", Group::Card),
    ("ssn", Group::Ssn),
    ("ss#", Group::Ssn),
    ("soc sec", Group::Ssn),
    ("social security", Group::Ssn),
    ("social sec", Group::Ssn),
    ("npi", Group::Npi),
    ("national provider", Group::Npi),
    ("prescriber", Group::Npi),
    ("provider id", Group::Npi),
    ("dea", Group::Dea),
    ("mbi", Group::Mbi),
    ("medicare", Group::Mbi),
    ("beneficiary", Group::Mbi),
    ("mrn", Group::Mrn),
    ("medical record", Group::Mrn),
    ("record number", Group::Mrn),
    ("record no", Group::Mrn),
    ("chart number", Group::Mrn),
    ("patient id", Group::Mrn),
    ("patient", Group::Clinical),
    ("diagnosis", Group::Clinical),
    ("diagnosed", Group::Clinical),
    ("dob", Group::Clinical),
    ("date of birth", Group::Clinical),
    ("treatment", Group::Clinical),
    ("prescription", Group::Clinical),
    ("medication", Group::Clinical),
    ("admitted", Group::Clinical),
    ("admission", Group::Clinical),
    ("discharge", Group::Clinical),
    ("lab result", Group::Clinical),
    ("biopsy", Group::Clinical),
    ("oncology", Group::Clinical),
    ("radiology", Group::Clinical),
    ("symptoms", Group::Clinical),
    ("allergies", Group::Clinical),
    ("clinic", Group::Clinical),
    ("physician", Group::Clinical),
    ("hospital", Group::Clinical),
    ("insurance", Group::Clinical),
    ("member id", Group::Clinical),
    ("hiv", Group::Clinical),
    ("pregnan", Group::Clinical),
    ("order", Group::NotPhi),
    ("tracking", Group::NotPhi),
    ("invoice", Group::NotPhi),
    ("reference", Group::NotPhi),
    ("ref #", Group::NotPhi),
    ("phone", Group::NotPhi),
    ("fax", Group::NotPhi),
    ("tel", Group::NotPhi),
    ("account", Group::NotPhi),
    ("routing", Group::NotPhi),
    ("iban", Group::NotPhi),
    ("zip", Group::NotPhi),
];

/// Characters before an identifier within which a keyword counts.
const BEFORE: usize = 80;
/// Characters after it.
const AFTER: usize = 40;
/// Window for clinical context (a paragraph, roughly).
const CLINICAL: usize = 400;

struct Mrn {
    name: String,
    re: Regex,
    checksum: Checksum,
    needs_keyword: bool,
}

struct Dict {
    name: String,
    words: Option<AhoCorasick>,
    res: Vec<Regex>,
}

/// Compiled detectors for one policy.
pub struct Scanner {
    candidates: Regex,
    keywords: AhoCorasick,
    mrns: Vec<Mrn>,
    dicts: Vec<Dict>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner").finish_non_exhaustive()
    }
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

impl Scanner {
    /// Compiles the built-in detectors and the policy's MRN patterns and dictionaries.
    pub fn new(policy: &DlpPolicy) -> Result<Self, PatternError> {
        // Digit runs (9–19 digits, single space or dash between groups), letter-led IDs (DEA,
        // MBI), and ICD-10-CM codes with their dot.
        let candidates = Regex::new(
            r"(?x)
            (?P<num>[0-9](?:[0-9]|[\ \-][0-9]){8,22})
            | (?P<alnum>\b[A-Za-z][A-Za-z9][0-9]{7}\b
                | \b[1-9][A-Za-z][A-Za-z0-9][0-9]-?[A-Za-z][A-Za-z0-9][0-9]-?[A-Za-z]{2}[0-9]{2}\b)
            | (?P<icd>\b[A-TV-Z][0-9][0-9AB]\.[0-9A-TV-Z]{1,4}\b)",
        )
        .map_err(|e| PatternError {
            what: "built-in candidates".into(),
            message: e.to_string(),
        })?;
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(KEYWORDS.iter().map(|(k, _)| *k))
            .map_err(|e| PatternError {
                what: "keywords".into(),
                message: e.to_string(),
            })?;
        let mut mrns = Vec::new();
        for m in &policy.mrn {
            mrns.push(Mrn {
                name: m.name.clone(),
                re: Regex::new(&m.pattern).map_err(|e| PatternError {
                    what: format!("mrn {}", m.name),
                    message: e.to_string(),
                })?,
                checksum: m.checksum,
                needs_keyword: m.require_keyword,
            });
        }
        let mut dicts = Vec::new();
        for d in &policy.dictionary {
            let words = if d.words.is_empty() {
                None
            } else {
                Some(
                    AhoCorasickBuilder::new()
                        .ascii_case_insensitive(true)
                        .match_kind(MatchKind::LeftmostLongest)
                        .build(&d.words)
                        .map_err(|e| PatternError {
                            what: format!("dictionary {}", d.name),
                            message: e.to_string(),
                        })?,
                )
            };
            let res = d
                .patterns
                .iter()
                .map(|p| Regex::new(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PatternError {
                    what: format!("dictionary {}", d.name),
                    message: e.to_string(),
                })?;
            dicts.push(Dict {
                name: d.name.clone(),
                words,
                res,
            });
        }
        Ok(Scanner {
            candidates,
            keywords,
            mrns,
            dicts,
        })
    }

    /// Everything found in one piece of text.
    pub fn scan(&self, text: &str) -> Vec<Found> {
        let b = text.as_bytes();
        // Keyword positions (start, end, group), in order.
        let kws: Vec<(usize, usize, Group)> = self
            .keywords
            .find_iter(text)
            .filter(|m| word_edges(b, m.start(), m.end()))
            .map(|m| (m.start(), m.end(), KEYWORDS[m.pattern().as_usize()].1))
            .collect();
        let near = |start: usize, end: usize, g: Group, before: usize, after: usize| {
            let lo = start.saturating_sub(before);
            let hi = end + after;
            let i = kws.partition_point(|k| k.1 < lo);
            kws[i..].iter().take_while(|k| k.0 <= hi).any(|k| k.2 == g)
        };
        // The closest keyword before a number (within 20 characters) that says what it is.
        let labelled_not_phi = |start: usize| {
            let lo = start.saturating_sub(20);
            let i = kws.partition_point(|k| k.1 < lo);
            kws[i..]
                .iter()
                .take_while(|k| k.1 <= start)
                .last()
                .is_some_and(|k| k.2 == Group::NotPhi)
        };
        let mut icd_at: Vec<usize> = Vec::new();
        let mut found = Vec::new();
        let mut ids: Vec<(usize, usize, &'static str)> = Vec::new();
        for c in self.candidates.captures_iter(text) {
            if let Some(m) = c.name("num") {
                let (s, e) = (m.start(), m.end());
                // Part of a longer token (letters or digits glued on): not an identifier.
                if !edges_clear(b, s, e) {
                    continue;
                }
                let raw = m.as_str();
                if let Some(kind) = classify_number(raw, s, e, &near, &labelled_not_phi) {
                    ids.push((s, e, kind));
                }
            } else if let Some(m) = c.name("alnum") {
                let (s, e) = (m.start(), m.end());
                let v = m.as_str().as_bytes();
                if v.len() == 9 && checks::is_dea(v) && near(s, e, Group::Dea, BEFORE, AFTER) {
                    ids.push((s, e, "dea"));
                } else if v.len() >= 11 && checks::is_mbi(v) && has_digit_and_letter(v) {
                    ids.push((s, e, "mbi"));
                }
            } else if let Some(m) = c.name("icd") {
                icd_at.push(m.start());
                found.push(Found {
                    detector: "icd10".into(),
                    masked: m.as_str().to_string(),
                    clinical_context: true,
                });
            }
        }
        let clinical = |s: usize, e: usize| {
            near(s, e, Group::Clinical, CLINICAL, CLINICAL)
                || icd_at
                    .iter()
                    .any(|p| *p + CLINICAL >= s && *p <= e + CLINICAL)
        };
        for (s, e, kind) in ids {
            found.push(Found {
                detector: kind.into(),
                masked: checks::mask(&text[s..e]),
                clinical_context: clinical(s, e),
            });
        }
        for m in &self.mrns {
            for c in m.re.captures_iter(text) {
                let Some(whole) = c.get(0) else { continue };
                let v = c.get(1).unwrap_or(whole);
                let digits: Vec<u8> = v
                    .as_str()
                    .bytes()
                    .filter(|b| b.is_ascii_alphanumeric())
                    .collect();
                let ok = match m.checksum {
                    Checksum::None => true,
                    Checksum::Luhn => {
                        digits.iter().all(u8::is_ascii_digit) && checks::luhn(&digits)
                    }
                    Checksum::Mod11 => checks::mod11(&digits),
                };
                if !ok {
                    continue;
                }
                if m.needs_keyword && !near(whole.start(), whole.end(), Group::Mrn, BEFORE, AFTER) {
                    continue;
                }
                found.push(Found {
                    detector: format!("mrn:{}", m.name),
                    masked: checks::mask(v.as_str()),
                    clinical_context: clinical(whole.start(), whole.end()),
                });
            }
        }
        for d in &self.dicts {
            let mut hits: Vec<String> = Vec::new();
            if let Some(ac) = &d.words {
                hits.extend(
                    ac.find_iter(text)
                        .filter(|m| word_edges(b, m.start(), m.end()))
                        .map(|m| text[m.start()..m.end()].to_ascii_lowercase()),
                );
            }
            for re in &d.res {
                hits.extend(re.find_iter(text).map(|m| checks::mask(m.as_str())));
            }
            for h in hits {
                found.push(Found {
                    detector: format!("dict:{}", d.name),
                    masked: h,
                    clinical_context: false,
                });
            }
        }
        // Distinct clinical keywords, as context signals of their own.
        let mut seen: Vec<&str> = Vec::new();
        for k in &kws {
            if k.2 == Group::Clinical {
                let w = &text[k.0..k.1];
                if !seen.iter().any(|x| x.eq_ignore_ascii_case(w)) {
                    seen.push(w);
                    found.push(Found {
                        detector: "keyword".into(),
                        masked: w.to_ascii_lowercase(),
                        clinical_context: true,
                    });
                }
            }
        }
        found
    }
}

/// Decides what a digit run is (card, SSN, NPI) or nothing.
fn classify_number(
    raw: &str,
    s: usize,
    e: usize,
    near: &dyn Fn(usize, usize, Group, usize, usize) -> bool,
    labelled_not_phi: &dyn Fn(usize) -> bool,
) -> Option<&'static str> {
    let digits: Vec<u8> = raw.bytes().filter(u8::is_ascii_digit).collect();
    let groups: Vec<usize> = raw.split([' ', '-']).map(str::len).collect();
    let seps: Vec<u8> = raw.bytes().filter(|b| *b == b' ' || *b == b'-').collect();
    // One kind of separator throughout: "4111-1111 1111" is two things, not one.
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return None;
    }
    if (13..=19).contains(&digits.len()) {
        // Cards are written as one run or in groups of 4 (Amex 4-6-5, Diners 4-6-4).
        let grouped_ok = groups.len() == 1
            || groups[..groups.len() - 1].iter().all(|g| *g == 4)
            || groups == [4, 6, 5]
            || groups == [4, 6, 4];
        if grouped_ok && checks::is_card(&digits).is_some() {
            return Some("card");
        }
        return None;
    }
    if digits.len() == 9 && checks::is_ssn(&digits) {
        if groups == [3, 2, 4] {
            return Some("ssn");
        }
        if groups.len() == 1 && near(s, e, Group::Ssn, BEFORE, AFTER) && !labelled_not_phi(s) {
            return Some("ssn");
        }
        return None;
    }
    if digits.len() == 10
        && groups.len() == 1
        && checks::is_npi(&digits)
        && near(s, e, Group::Npi, BEFORE, AFTER)
        && !labelled_not_phi(s)
    {
        return Some("npi");
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The match is not glued to letters or digits on either side (a dash or dot followed by
/// more digits counts as glued: "12-345-678-901" is one thing).
fn edges_clear(b: &[u8], s: usize, e: usize) -> bool {
    let glued_before = s > 0
        && (is_word_byte(b[s - 1])
            || (matches!(b[s - 1], b'-' | b'.' | b'/') && s >= 2 && b[s - 2].is_ascii_digit()));
    let glued_after = e < b.len()
        && (is_word_byte(b[e])
            || (matches!(b[e], b'-' | b'.' | b'/')
                && b.get(e + 1).is_some_and(u8::is_ascii_digit)));
    !glued_before && !glued_after
}

/// Keywords count only as whole words (or word prefixes for stems like "pregnan").
fn word_edges(b: &[u8], s: usize, _e: usize) -> bool {
    s == 0 || !b[s - 1].is_ascii_alphanumeric()
}

fn has_digit_and_letter(v: &[u8]) -> bool {
    v.iter().any(u8::is_ascii_digit) && v.iter().any(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        let s = Scanner::new(&DlpPolicy::default()).unwrap();
        s.scan(text)
            .into_iter()
            .filter(|f| f.detector != "keyword")
            .map(|f| f.detector)
            .collect()
    }

    #[test]
    fn cards_and_look_alikes() {
        assert_eq!(kinds("Card 4111 1111 1111 1111 exp 12/27"), ["card"]);
        assert_eq!(kinds("pay with 4111-1111-1111-1111."), ["card"]);
        assert_eq!(kinds("amex 3782 822463 10005"), ["card"]);
        assert!(kinds("order 4111 1111 1111 1112").is_empty(), "bad Luhn");
        assert!(kinds("4111-1111 1111-1111").is_empty(), "mixed separators");
        assert!(kinds("tracking 9400 1000 0000 0000 0000 00").is_empty());
        assert!(
            kinds("ID X4111111111111111").is_empty(),
            "glued to a letter"
        );
    }

    #[test]
    fn ssns_need_format_or_keyword() {
        assert_eq!(kinds("SSN 078-05-1120"), ["ssn"]);
        assert_eq!(kinds("her social security number is 078051120"), ["ssn"]);
        assert!(kinds("routing 078051120").is_empty());
        assert!(kinds("ZIP 90210-1234 phone 555-123-4567").is_empty());
        assert!(
            kinds("SSN 666-12-3456 or 123-00-4567").is_empty(),
            "invalid ranges"
        );
    }

    #[test]
    fn provider_and_beneficiary_ids() {
        assert_eq!(kinds("Dr Who, NPI 1234567893"), ["npi"]);
        assert!(kinds("call 1234567893").is_empty(), "no keyword");
        assert_eq!(kinds("DEA# AB1234563"), ["dea"]);
        assert!(kinds("part AB1234563").is_empty());
        assert_eq!(kinds("Medicare MBI 1EG4-TE5-MK73"), ["mbi"]);
        assert!(kinds("the code ABCDEFGHIJK").is_empty());
    }

    #[test]
    fn clinical_context_and_icd() {
        let s = Scanner::new(&DlpPolicy::default()).unwrap();
        let f = s.scan("Patient diagnosed with E11.9; SSN 078-05-1120.");
        let ssn = f.iter().find(|x| x.detector == "ssn").unwrap();
        assert!(ssn.clinical_context);
        assert_eq!(ssn.masked, "***-**-1120");
        assert!(f
            .iter()
            .any(|x| x.detector == "icd10" && x.masked == "E11.9"));
        let f = s.scan("Invoice: card 4111 1111 1111 1111, thanks.");
        assert!(
            !f.iter()
                .find(|x| x.detector == "card")
                .unwrap()
                .clinical_context
        );
    }
}

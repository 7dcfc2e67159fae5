//! Finding identifiers in text. Every identifier we look for contains digits, so one pass finds
//! the digit runs (eight bytes at a time, see `digits`) and nominates candidates around them:
//! numbers with single space or dash separators, DEA numbers, MBIs, ICD-10 codes. One
//! Aho-Corasick pass finds keywords; the organisation's MRN patterns run only in windows next
//! to an MRN keyword (unless a rule says otherwise). Validators and keyword proximity decide.
//! Matched values leave this module masked only.

mod digits;
pub mod normalize;

pub mod checks;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

use crate::policy::{Checksum, DlpPolicy, PatternError};
use crate::Detector;

/// What a detector found, before scoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Which detector.
    pub detector: Detector,
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
    ("room", Group::NotPhi),
    ("ticket", Group::NotPhi),
    ("claim", Group::NotPhi),
    ("confirmation", Group::NotPhi),
    ("isbn", Group::NotPhi),
    ("extension", Group::NotPhi),
    ("ext.", Group::NotPhi),
    ("serial", Group::NotPhi),
    ("pin:", Group::NotPhi),
    ("pin #", Group::NotPhi),
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
    keywords: AhoCorasick,
    mrns: Vec<Mrn>,
    dicts: Vec<Dict>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner").finish_non_exhaustive()
    }
}

impl Scanner {
    /// Compiles the built-in detectors and the policy's MRN patterns and dictionaries.
    pub fn new(policy: &DlpPolicy) -> Result<Self, PatternError> {
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
            keywords,
            mrns,
            dicts,
        })
    }

    /// Everything found in one piece of text (after making it canonical: digits of any script,
    /// invisible characters, spaces and dashes of every kind; see [`normalize`]).
    pub fn scan(&self, text: &str) -> Vec<Found> {
        let canonical = normalize::for_detection(text);
        let text: &str = &canonical;
        let b = text.as_bytes();
        // Pass 1: candidates around digit runs, by structure alone.
        let mut nums: Vec<(usize, usize)> = Vec::new();
        let mut deas: Vec<(usize, usize)> = Vec::new();
        let mut mbis: Vec<(usize, usize)> = Vec::new();
        let mut icds: Vec<(usize, usize)> = Vec::new();
        let mut short: Vec<(usize, usize)> = Vec::new();
        let want_short = self.mrns.iter().any(|m| m.needs_keyword);
        for (s, e) in digits::runs(b) {
            let ndigits = b[s..e].iter().filter(|c| c.is_ascii_digit()).count();
            if ndigits >= 9 {
                // Part of a longer token (letters or digits glued on): not an identifier.
                if edges_clear(b, s, e) {
                    nums.push((s, e));
                }
                continue;
            }
            if want_short && ndigits >= 4 {
                short.push((s, e));
            }
            // A DEA number: two letters glued to exactly seven digits.
            if e - s == 7 && s >= 2 && ndigits == 7 {
                let start = s - 2;
                if (start == 0 || !is_word_byte(b[start - 1]))
                    && (e == b.len() || !is_word_byte(b[e]))
                    && checks::is_dea(&b[start..e])
                {
                    deas.push((start, e));
                    continue;
                }
            }
            // An MBI starts with a digit at a word start: 11 characters, or 13 with dashes.
            if (s == 0 || !b[s - 1].is_ascii_alphanumeric()) && b[s] != b'0' {
                let hit = [11, 13].into_iter().find(|len| {
                    b.get(s..s + len).is_some_and(|cand| {
                        let end = s + len;
                        (end == b.len() || !is_word_byte(b[end]))
                            && checks::is_mbi(cand)
                            && (*len == 11 || (cand[4] == b'-' && cand[8] == b'-'))
                    })
                });
                if let Some(len) = hit {
                    mbis.push((s, s + len));
                    continue;
                }
            }
            // An ICD-10-CM code: a letter, two characters, a dot, one to four more.
            if s >= 1
                && b[s - 1].is_ascii_uppercase()
                && (s == 1 || !b[s - 2].is_ascii_alphanumeric())
            {
                if let Some(len) = icd10_len(&b[s - 1..]) {
                    icds.push((s - 1, s - 1 + len));
                }
            }
        }
        // Pass 2: keywords, only where they can matter — around candidates (clinical context
        // reaches furthest) and around short numbers when an MRN rule needs its keyword.
        let mut spans: Vec<(usize, usize)> = nums
            .iter()
            .chain(&deas)
            .chain(&mbis)
            .map(|(s, e)| (s.saturating_sub(CLINICAL), e + CLINICAL))
            .chain(
                short
                    .iter()
                    .map(|(s, e)| (s.saturating_sub(BEFORE + 32), e + AFTER + 32)),
            )
            .collect();
        spans.sort_unstable();
        let mut windows: Vec<(usize, usize)> = Vec::new();
        for (lo, hi) in spans {
            let (lo, hi) = (floor_char(text, lo), ceil_char(text, hi.min(text.len())));
            match windows.last_mut() {
                Some(last) if last.1 >= lo => last.1 = last.1.max(hi),
                _ => windows.push((lo, hi)),
            }
        }
        let mut kws: Vec<(usize, usize, Group)> = Vec::new();
        for (lo, hi) in &windows {
            kws.extend(
                self.keywords
                    .find_iter(text.get(*lo..*hi).unwrap_or_default())
                    .map(|m| {
                        (
                            lo + m.start(),
                            lo + m.end(),
                            KEYWORDS[m.pattern().as_usize()].1,
                        )
                    })
                    .filter(|k| word_edges(b, k.0, k.1)),
            );
        }
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
        let mut found = Vec::new();
        let mut ids: Vec<(usize, usize, Detector)> = Vec::new();
        for (s, e) in nums {
            for (kind, start, end) in classify_number(
                text.get(s..e).unwrap_or_default(),
                s,
                &near,
                &labelled_not_phi,
            ) {
                ids.push((start, end, kind));
            }
        }
        for (s, e) in deas {
            if near(s, e, Group::Dea, BEFORE, AFTER) {
                ids.push((s, e, Detector::Dea));
            }
        }
        ids.extend(mbis.into_iter().map(|(s, e)| (s, e, Detector::Mbi)));
        let icd_at: Vec<usize> = icds.iter().map(|(s, _)| *s).collect();
        for (s, e) in &icds {
            found.push(Found {
                detector: Detector::Icd10,
                masked: text.get(*s..*e).unwrap_or_default().to_string(),
                clinical_context: true,
            });
        }
        let clinical = |s: usize, e: usize| {
            near(s, e, Group::Clinical, CLINICAL, CLINICAL)
                || icd_at
                    .iter()
                    .any(|p| *p + CLINICAL >= s && *p <= e + CLINICAL)
        };
        for (s, e, kind) in ids {
            found.push(Found {
                detector: kind,
                masked: checks::mask(text.get(s..e).unwrap_or_default()),
                clinical_context: clinical(s, e),
            });
        }
        let mut mrn_seen: Vec<(usize, usize)> = Vec::new();
        for m in &self.mrns {
            // With a keyword required, only the text around MRN keywords is searched.
            let windows: Vec<(usize, usize)> = if m.needs_keyword {
                let mut w: Vec<(usize, usize)> = Vec::new();
                for k in kws.iter().filter(|k| k.2 == Group::Mrn) {
                    let lo = floor_char(text, k.0.saturating_sub(AFTER + 32));
                    let hi = ceil_char(text, (k.1 + BEFORE + 32).min(text.len()));
                    match w.last_mut() {
                        Some(last) if last.1 >= lo => last.1 = hi,
                        _ => w.push((lo, hi)),
                    }
                }
                w
            } else {
                vec![(0, text.len())]
            };
            for (lo, hi) in windows {
                for c in m.re.captures_iter(text.get(lo..hi).unwrap_or_default()) {
                    let Some(whole) = c.get(0) else { continue };
                    let whole_start = lo + whole.start();
                    let whole_end = lo + whole.end();
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
                    if m.needs_keyword && !near(whole_start, whole_end, Group::Mrn, BEFORE, AFTER) {
                        continue;
                    }
                    // Windows can overlap a previous one only at their edges; count a value once.
                    let masked = checks::mask(v.as_str());
                    let key = (whole_start, whole_end);
                    if mrn_seen.contains(&key) {
                        continue;
                    }
                    mrn_seen.push(key);
                    found.push(Found {
                        detector: Detector::Mrn(Some(m.name.clone())),
                        masked,
                        clinical_context: clinical(whole_start, whole_end),
                    });
                }
            }
        }
        for d in &self.dicts {
            let mut hits: Vec<String> = Vec::new();
            if let Some(ac) = &d.words {
                hits.extend(
                    ac.find_iter(text)
                        .filter(|m| word_edges(b, m.start(), m.end()))
                        .map(|m| {
                            text.get(m.start()..m.end())
                                .unwrap_or_default()
                                .to_ascii_lowercase()
                        }),
                );
            }
            for re in &d.res {
                hits.extend(re.find_iter(text).map(|m| checks::mask(m.as_str())));
            }
            for h in hits {
                found.push(Found {
                    detector: Detector::Dict(d.name.clone()),
                    masked: h,
                    clinical_context: false,
                });
            }
        }
        // Distinct clinical keywords, as context signals of their own.
        let mut seen: Vec<&str> = Vec::new();
        for k in &kws {
            if k.2 == Group::Clinical {
                let w = text.get(k.0..k.1).unwrap_or_default();
                if !seen.iter().any(|x| x.eq_ignore_ascii_case(w)) {
                    seen.push(w);
                    found.push(Found {
                        detector: Detector::Keyword,
                        masked: w.to_ascii_lowercase(),
                        clinical_context: true,
                    });
                }
            }
        }
        found
    }
}

/// The identifiers (card, SSN, NPI) in a digit run, with their spans. A run may join several
/// numbers (table cells, lines) and carry more groups after an identifier (a CVV, an expiry),
/// so candidates start at the run's start and after every separator other than one space or
/// dash (where a number written the classic way starts), and the leading groups from there
/// are tried, longest first — only where their digits could make an identifier.
fn classify_number(
    raw: &str,
    s: usize,
    near: &dyn Fn(usize, usize, Group, usize, usize) -> bool,
    labelled_not_phi: &dyn Fn(usize) -> bool,
) -> Vec<(Detector, usize, usize)> {
    // Group boundaries: (start, end) of each digit group within `raw`.
    let b = raw.as_bytes();
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            bounds.push((start, i));
        }
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
    }
    let mut starts = vec![0usize];
    for k in 1..bounds.len() {
        let sep = raw.get(bounds[k - 1].1..bounds[k].0).unwrap_or_default();
        if sep != " " && sep != "-" {
            starts.push(k);
        }
    }
    let mut found = Vec::new();
    let mut covered = 0usize;
    for st in starts {
        if bounds[st].0 < covered {
            continue;
        }
        let mut digits = 0usize;
        let mut ends = Vec::new();
        for (j, g) in bounds.iter().enumerate().skip(st) {
            digits += g.1 - g.0;
            if digits > 19 {
                break;
            }
            if matches!(digits, 9 | 10 | 13..=19) {
                ends.push(j);
            }
        }
        for &j in ends.iter().rev() {
            let (from, to) = (bounds[st].0, bounds[j].1);
            let slice = raw.get(from..to).unwrap_or_default();
            if let Some(kind) = classify_groups(slice, s + from, s + to, near, labelled_not_phi) {
                found.push((kind, s + from, s + to));
                covered = to;
                break;
            }
        }
    }
    found
}

/// [`classify_number`] for exactly these groups.
fn classify_groups(
    raw: &str,
    s: usize,
    e: usize,
    near: &dyn Fn(usize, usize, Group, usize, usize) -> bool,
    labelled_not_phi: &dyn Fn(usize) -> bool,
) -> Option<Detector> {
    let digits: Vec<u8> = raw.bytes().filter(u8::is_ascii_digit).collect();
    let groups: Vec<usize> = raw
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect();
    if (13..=19).contains(&digits.len()) {
        // Cards are written as one run or in groups of 4 (Amex 4-6-5, Diners 4-6-4).
        let grouped_ok = groups.len() == 1
            || groups[..groups.len() - 1].iter().all(|g| *g == 4)
            || groups == [4, 6, 5]
            || groups == [4, 6, 4];
        // A number the text labels as something else ("order 4111 …") is that, unless card
        // words or clinical context say otherwise.
        let relabelled = labelled_not_phi(s)
            && !near(s, e, Group::Card, BEFORE, AFTER)
            && !near(s, e, Group::Clinical, BEFORE, AFTER);
        if grouped_ok && !relabelled && checks::is_card(&digits).is_some() {
            return Some(Detector::Card);
        }
        return None;
    }
    if digits.len() == 9 && checks::is_ssn(&digits) {
        let relabelled = labelled_not_phi(s)
            && !near(s, e, Group::Ssn, BEFORE, AFTER)
            && !near(s, e, Group::Clinical, BEFORE, AFTER);
        if groups == [3, 2, 4] && !relabelled {
            return Some(Detector::Ssn);
        }
        if groups.len() == 1 && near(s, e, Group::Ssn, BEFORE, AFTER) && !labelled_not_phi(s) {
            return Some(Detector::Ssn);
        }
        return None;
    }
    if digits.len() == 10
        && groups.len() == 1
        && checks::is_npi(&digits)
        && near(s, e, Group::Npi, BEFORE, AFTER)
        && !labelled_not_phi(s)
    {
        return Some(Detector::Npi);
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

/// Length of an ICD-10-CM code with its dot at the start of `b` (a letter other than U, a
/// digit, a digit or A/B, a dot, one to four of digits and letters other than U), if any.
fn icd10_len(b: &[u8]) -> Option<usize> {
    let first = *b.first()?;
    if !first.is_ascii_uppercase() || first == b'U' {
        return None;
    }
    if !b.get(1)?.is_ascii_digit()
        || !matches!(b.get(2)?, b'0'..=b'9' | b'A' | b'B')
        || *b.get(3)? != b'.'
    {
        return None;
    }
    let tail = b[4..]
        .iter()
        .take(5)
        .take_while(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && **c != b'U'))
        .count();
    if !(1..=4).contains(&tail) {
        return None;
    }
    let end = 4 + tail;
    if b.get(end).is_some_and(|c| is_word_byte(*c)) {
        return None;
    }
    Some(end)
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        let s = Scanner::new(&DlpPolicy::default()).unwrap();
        s.scan(text)
            .into_iter()
            .filter(|f| f.detector != Detector::Keyword)
            .map(|f| f.detector.to_string())
            .collect()
    }

    #[test]
    fn cards_and_look_alikes() {
        assert_eq!(kinds("Card 4111 1111 1111 1111 exp 12/27"), ["card"]);
        assert_eq!(kinds("pay with 4111-1111-1111-1111."), ["card"]);
        assert_eq!(kinds("amex 3782 822463 10005"), ["card"]);
        assert!(kinds("order 4111 1111 1111 1112").is_empty(), "bad Luhn");
        // Issue 11: separators as people paste them.
        for t in [
            "4111-1111 1111-1111",
            "4111.1111.1111.1111",
            "4111/1111/1111/1111",
            "4111\t1111\t1111\t1111",
            "4111  1111  1111  1111",
            "4111\r\n1111\r\n1111\r\n1111",
            "4111 - 1111 - 1111 - 1111",
            "4111 1111 1111 1111 123",
            "4111 1111 1111 1111 12/27",
        ] {
            assert_eq!(kinds(&format!("pay {t} now")), ["card"], "{t:?}");
        }
        for t in [
            "219.09.9999",
            "219/09/9999",
            "219 - 09 - 9999",
            "219\t09\t9999",
        ] {
            assert_eq!(kinds(&format!("member {t} ok")), ["ssn"], "{t:?}");
        }
        // Labelled as something else, without identity or clinical context: not PHI.
        for t in [
            "Room 219-09-9999 is free",
            "ticket 219.09.9999 closed",
            "order 4111 1111 1111 1111 shipped",
            "claim 219-09-9999 paid",
        ] {
            assert!(kinds(t).is_empty(), "{t:?}");
        }
        // ...unless the text says whose it is.
        assert_eq!(kinds("patient ssn, ticket 219-09-9999"), ["ssn"]);
        // Table cells and lines joined into one run: each number is still found on its own.
        assert_eq!(kinds("born\t1960\t078-05-1120\tok"), ["ssn"]);
        assert_eq!(
            kinds("1960 / 078-05-1120 / 4111 1111 1111 1111"),
            ["ssn", "card"]
        );
        // Dates, times, versions and phone numbers with the same separators stay clean.
        for t in [
            "2024-01-15 10.30.45",
            "12/05/2024",
            "call 555.123.4567",
            "v 10.2.3.4",
            "1.2.3.4.5.6.7.8.9",
        ] {
            assert!(kinds(t).is_empty(), "{t:?}");
        }
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
        let ssn = f.iter().find(|x| x.detector == Detector::Ssn).unwrap();
        assert!(ssn.clinical_context);
        assert_eq!(ssn.masked, "***-**-1120");
        assert!(f
            .iter()
            .any(|x| x.detector == Detector::Icd10 && x.masked == "E11.9"));
        let f = s.scan("Invoice: card 4111 1111 1111 1111, thanks.");
        assert!(
            !f.iter()
                .find(|x| x.detector == Detector::Card)
                .unwrap()
                .clinical_context
        );
    }
}

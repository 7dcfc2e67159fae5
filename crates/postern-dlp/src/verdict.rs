//! The verdict: what was found (masked), where, the score and the action.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::detect::Found;
use crate::extract::{Location, Note};
use crate::policy::{Action, DlpPolicy};
use crate::Detector;

/// Hits of one detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorHits {
    /// Which detector (written as its word: `card`, `mrn:NAME`, …).
    pub detector: Detector,
    /// How many.
    pub count: usize,
    /// How many sat among clinical words or diagnosis codes.
    pub clinical_context: usize,
    /// Where (`subject`, `body`, `attachment NAME`), each once.
    pub locations: Vec<String>,
    /// Up to three masked examples.
    pub samples: Vec<String>,
}

/// The outcome of inspecting one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Hits per detector.
    pub hits: Vec<DetectorHits>,
    /// The score.
    pub score: f64,
    /// The action chosen.
    pub action: Action,
    /// Why that action, in words safe to log and to put in a bounce.
    pub reasons: Vec<String>,
    /// What could not be inspected.
    pub notes: Vec<Note>,
}

impl Verdict {
    /// One line for logs and headers: the action, detectors with counts, the score. No values.
    pub fn summary(&self) -> String {
        let mut s = format!("{} score={:.1}", self.action, self.score);
        for h in &self.hits {
            if h.detector == Detector::Keyword {
                continue;
            }
            s.push_str(&format!(" {}={}", h.detector, h.count));
        }
        for n in &self.notes {
            match n {
                Note::Encrypted { .. } => s.push_str(" encrypted-part"),
                Note::Limit { .. } => s.push_str(" limit-reached"),
                Note::Unreadable { .. } => s.push_str(" unreadable-part"),
            }
        }
        s
    }

    /// Hits of one detector (`Detector::Mrn(None)` counts every MRN rule's).
    pub fn count(&self, detector: &Detector) -> usize {
        self.hits
            .iter()
            .filter(|h| h.detector == *detector || h.detector.family() == *detector)
            .map(|h| h.count)
            .sum()
    }
}

/// Scores the findings and picks the action.
pub fn decide(found: Vec<(Location, Found)>, notes: Vec<Note>, policy: &DlpPolicy) -> Verdict {
    let mut by: BTreeMap<Detector, DetectorHits> = BTreeMap::new();
    for (loc, f) in found {
        let h = by
            .entry(f.detector.clone())
            .or_insert_with(|| DetectorHits {
                detector: f.detector.clone(),
                count: 0,
                clinical_context: 0,
                locations: Vec::new(),
                samples: Vec::new(),
            });
        h.count += 1;
        if f.clinical_context {
            h.clinical_context += 1;
        }
        let l = loc.to_string();
        if !h.locations.contains(&l) {
            h.locations.push(l);
        }
        if h.samples.len() < 3 && !h.samples.contains(&f.masked) {
            h.samples.push(f.masked);
        }
    }
    let mut score = 0.0;
    let mut context = 0.0;
    let mut action = Action::Allow;
    let mut reasons = Vec::new();
    for h in by.values() {
        let w = policy.weight(&h.detector);
        if h.detector.is_context() {
            context += w * h.count as f64;
            continue;
        }
        score += w * h.count as f64 + policy.clinical_bonus * h.clinical_context as f64;
        if let Some(a) = policy.forced(&h.detector) {
            if a > action {
                action = a;
            }
            if a > Action::Allow {
                reasons.push(format!(
                    "{} x{} ({})",
                    h.detector,
                    h.count,
                    h.locations.join(", ")
                ));
            }
        }
    }
    score += context.min(policy.context_cap);
    for t in &policy.threshold {
        if score >= t.min_score && t.action > action {
            action = t.action;
            reasons.push(format!("score {score:.1} reaches {:.1}", t.min_score));
        }
    }
    for n in &notes {
        let (a, why) = match n {
            Note::Encrypted { location } => (policy.on_encrypted, format!("encrypted: {location}")),
            Note::Limit { what } => (policy.on_limit, format!("not fully inspected: {what}")),
            Note::Unreadable { location, why } => (
                policy.on_unreadable,
                format!("unreadable {location}: {why}"),
            ),
        };
        if a > action {
            action = a;
        }
        if a > Action::Allow {
            reasons.push(why);
        }
    }
    Verdict {
        hits: by.into_values().collect(),
        score,
        action,
        reasons,
        notes,
    }
}

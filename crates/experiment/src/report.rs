//! `unisight experiment report`: per arm searches, click-through rate, saves per search and
//! mean reciprocal rank of the first click, with 95% intervals, each treatment tested against
//! the first arm (control).
//!
//! A search is the set of `impression` lines of one request; actions count only when they
//! name a request with impressions (others are counted as orphans), and each
//! (request, result, action) counts once (repeats are counted as duplicates).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;
use unisight_engagement::{Action, EngagementEvent};

use crate::stats::{mean_interval, two_means, two_proportions, wilson, Difference, Interval};

/// Searches per arm, and successes and failures per cell of the click test, below which the
/// report says there is not enough data instead of a verdict.
pub const MIN_SEARCHES: u64 = 100;
const MIN_CELL: u64 = 10;

/// One arm's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReport {
    /// Arm name.
    pub arm: String,
    /// Searches (requests with impressions).
    pub searches: u64,
    /// Of them, made by simulated users.
    pub simulated_searches: u64,
    /// Distinct (opaque) users.
    pub users: u64,
    /// Searches with at least one click.
    pub searches_with_click: u64,
    /// Clicks.
    pub clicks: u64,
    /// Saves.
    pub saves: u64,
    /// Searches with a click / searches (Wilson interval).
    pub ctr: Option<Interval>,
    /// Saves per search.
    pub saves_per_search: Option<Interval>,
    /// Mean over searches of 1 / (rank of the first click), 0 without a click.
    pub mrr_first_click: Option<Interval>,
}

/// A treatment against the control.
#[derive(Debug, Clone, Serialize)]
pub struct ArmComparison {
    /// Treatment arm.
    pub arm: String,
    /// Control arm.
    pub control: String,
    /// Click-through difference (two-proportion z-test).
    pub ctr: Option<Difference>,
    /// Saves per search difference (Welch).
    pub saves_per_search: Option<Difference>,
    /// MRR difference (Welch).
    pub mrr_first_click: Option<Difference>,
    /// Plain-words verdict.
    pub verdict: String,
}

/// Version of `report.json` written by `unisight experiment report`.
pub const EXPERIMENT_REPORT_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    /// [`EXPERIMENT_REPORT_VERSION`].
    pub format_version: u32,
    /// Per arm, in first-seen order (the control first when it served the first search).
    pub arms: Vec<ArmReport>,
    /// Every other arm against `arms[0]`.
    pub comparisons: Vec<ArmComparison>,
    /// Action lines whose request has no impressions in the log.
    pub orphan_actions: u64,
    /// Repeated (request, result, action) lines not counted again.
    pub duplicate_actions: u64,
    /// Impression lines without a request id or arm (not from the service).
    pub unattributed: u64,
    /// True when any counted search came from simulated users.
    pub simulated: bool,
}

#[derive(Default)]
struct Search {
    arm: String,
    user: Option<String>,
    simulated: bool,
    clicks: u64,
    saves: u64,
    first_click: Option<u32>,
}

/// Computes the report; `control` names the arm compared against (default: the first arm seen).
pub fn experiment_report(events: &[EngagementEvent], control: Option<&str>) -> ExperimentReport {
    let mut searches: HashMap<&str, Search> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut unattributed = 0;
    for e in events.iter().filter(|e| e.action == Action::Impression) {
        let (Some(request), Some(arm)) = (e.request.as_deref(), e.arm.as_deref()) else {
            unattributed += 1;
            continue;
        };
        searches.entry(request).or_insert_with(|| {
            if !order.iter().any(|a| a == arm) {
                order.push(arm.to_string());
            }
            Search {
                arm: arm.to_string(),
                user: e.user.clone(),
                simulated: e.simulated,
                ..Search::default()
            }
        });
    }
    let mut seen: HashSet<(&str, &str, Action)> = HashSet::new();
    let (mut orphan_actions, mut duplicate_actions) = (0, 0);
    for e in events
        .iter()
        .filter(|e| matches!(e.action, Action::Click | Action::Save))
    {
        let Some(search) = e.request.as_deref().and_then(|r| searches.get_mut(r)) else {
            orphan_actions += 1;
            continue;
        };
        let request = e.request.as_deref().unwrap_or_default();
        if !seen.insert((request, e.result.as_str(), e.action)) {
            duplicate_actions += 1;
            continue;
        }
        match e.action {
            Action::Click => {
                search.clicks += 1;
                if let Some(p) = e.position {
                    search.first_click = Some(search.first_click.map_or(p, |f| f.min(p)));
                }
            }
            _ => search.saves += 1,
        }
    }
    if let Some(c) = control {
        if let Some(i) = order.iter().position(|a| a == c) {
            let name = order.remove(i);
            order.insert(0, name);
        }
    }
    let mut per_arm: BTreeMap<&str, Vec<&Search>> = BTreeMap::new();
    for s in searches.values() {
        per_arm.entry(s.arm.as_str()).or_default().push(s);
    }
    let series = |arm: &str| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let list = per_arm.get(arm).cloned().unwrap_or_default();
        (
            list.iter()
                .map(|s| f64::from(u8::from(s.clicks > 0)))
                .collect(),
            list.iter().map(|s| s.saves as f64).collect(),
            list.iter()
                .map(|s| s.first_click.map_or(0.0, |p| 1.0 / (f64::from(p) + 1.0)))
                .collect(),
        )
    };
    let arms: Vec<ArmReport> = order
        .iter()
        .map(|arm| {
            let list = per_arm.get(arm.as_str()).cloned().unwrap_or_default();
            let n = list.len() as u64;
            let with_click = list.iter().filter(|s| s.clicks > 0).count() as u64;
            let (_, saves, mrr) = series(arm);
            ArmReport {
                arm: arm.clone(),
                searches: n,
                simulated_searches: list.iter().filter(|s| s.simulated).count() as u64,
                users: list
                    .iter()
                    .filter_map(|s| s.user.as_deref())
                    .collect::<HashSet<_>>()
                    .len() as u64,
                searches_with_click: with_click,
                clicks: list.iter().map(|s| s.clicks).sum(),
                saves: list.iter().map(|s| s.saves).sum(),
                ctr: wilson(with_click, n),
                saves_per_search: mean_interval(&saves),
                mrr_first_click: mean_interval(&mrr),
            }
        })
        .collect();
    let comparisons = arms
        .iter()
        .skip(1)
        .map(|t| {
            let c = &arms[0];
            let (_, c_saves, c_mrr) = series(&c.arm);
            let (_, t_saves, t_mrr) = series(&t.arm);
            let ctr = two_proportions(c.searches_with_click, c.searches, t.searches_with_click, t.searches);
            let enough = c.searches >= MIN_SEARCHES
                && t.searches >= MIN_SEARCHES
                && [c, t].iter().all(|a| {
                    a.searches_with_click >= MIN_CELL
                        && a.searches - a.searches_with_click >= MIN_CELL
                });
            let verdict = if !enough {
                format!(
                    "not enough data: each arm needs at least {MIN_SEARCHES} searches and {MIN_CELL} \
                     searches with and without a click ({} has {}, {} has {})",
                    c.arm, c.searches, t.arm, t.searches
                )
            } else {
                match ctr {
                    Some(d) if d.p_value < 0.05 => format!(
                        "{} {}: click-through {:+.1} points (95% CI {:+.1} to {:+.1}), {}",
                        t.arm,
                        if d.delta.value > 0.0 { "wins" } else { "loses" },
                        100.0 * d.delta.value,
                        100.0 * d.delta.low,
                        100.0 * d.delta.high,
                        p_value(d.p_value)
                    ),
                    Some(d) => format!(
                        "no significant difference in click-through ({:+.1} points, {})",
                        100.0 * d.delta.value,
                        p_value(d.p_value)
                    ),
                    None => "no clicks to compare".into(),
                }
            };
            ArmComparison {
                arm: t.arm.clone(),
                control: c.arm.clone(),
                ctr,
                saves_per_search: two_means(&c_saves, &t_saves),
                mrr_first_click: two_means(&c_mrr, &t_mrr),
                verdict,
            }
        })
        .collect();
    ExperimentReport {
        format_version: EXPERIMENT_REPORT_VERSION,
        simulated: arms.iter().any(|a| a.simulated_searches > 0),
        arms,
        comparisons,
        orphan_actions,
        duplicate_actions,
        unattributed,
    }
}

/// A p-value as people read it.
fn p_value(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

fn interval(i: Option<Interval>, scale: f64) -> String {
    i.map_or("-".into(), |i| {
        format!(
            "{:.3} ({:.3} to {:.3})",
            scale * i.value,
            scale * i.low,
            scale * i.high
        )
    })
}

fn difference(d: Option<Difference>) -> String {
    d.map_or("-".into(), |d| {
        format!(
            "{:+.3} ({:+.3} to {:+.3}), {}",
            d.delta.value,
            d.delta.low,
            d.delta.high,
            p_value(d.p_value)
        )
    })
}

impl ExperimentReport {
    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::from("## Experiment report\n\n");
        if self.simulated {
            let _ = writeln!(
                s,
                "**Searches by SIMULATED users are counted here** (see the `simulated` column): \
                 these numbers show the mechanics, not how people behave.\n"
            );
        }
        s.push_str(
            "| arm | searches | simulated | users | click-through (95% CI) | saves / search | MRR of first click |\n\
             |---|---:|---:|---:|---|---|---|\n",
        );
        for a in &self.arms {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                a.arm,
                a.searches,
                a.simulated_searches,
                a.users,
                interval(a.ctr, 1.0),
                interval(a.saves_per_search, 1.0),
                interval(a.mrr_first_click, 1.0)
            );
        }
        for c in &self.comparisons {
            let _ = writeln!(
                s,
                "\n### {} against {}\n\n- click-through: {}\n- saves per search: {}\n- MRR of first click: {}\n- **{}**",
                c.arm,
                c.control,
                difference(c.ctr),
                difference(c.saves_per_search),
                difference(c.mrr_first_click),
                c.verdict
            );
        }
        let _ = writeln!(
            s,
            "\nNot counted: {} actions on unknown requests, {} repeated actions, {} impressions without request or arm.",
            self.orphan_actions, self.duplicate_actions, self.unattributed
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn impression(request: &str, arm: &str, result: &str, position: u32) -> EngagementEvent {
        EngagementEvent {
            query: "upload:q".into(),
            result: result.into(),
            action: Action::Impression,
            position: Some(position),
            request: Some(request.into()),
            arm: Some(arm.into()),
            user: Some(format!("u-{request}")),
            ..EngagementEvent::default()
        }
    }

    fn action(request: &str, result: &str, action: Action, position: u32) -> EngagementEvent {
        EngagementEvent {
            action,
            ..impression(request, "x", result, position)
        }
    }

    #[test]
    fn counts_searches_clicks_and_reciprocal_ranks() {
        let mut log = Vec::new();
        for r in ["a1", "a2"] {
            for p in 0..3 {
                log.push(impression(r, "control", &format!("i{p}"), p));
            }
        }
        log.push(impression("b1", "treatment", "i0", 0));
        log.push(action("a1", "i2", Action::Click, 2));
        log.push(action("a1", "i1", Action::Click, 1));
        log.push(action("a1", "i1", Action::Click, 1)); // repeat
        log.push(action("a1", "i1", Action::Save, 1));
        log.push(action("zz", "i1", Action::Click, 1)); // unknown request
        log.push(action("b1", "i0", Action::Click, 0));
        let r = experiment_report(&log, None);
        assert_eq!(r.arms[0].arm, "control");
        assert_eq!(r.arms[0].searches, 2);
        assert_eq!(r.arms[0].searches_with_click, 1);
        assert_eq!(r.arms[0].clicks, 2);
        assert_eq!(r.arms[0].saves, 1);
        // first click at rank 2 (position 1) in a1, none in a2
        assert!((r.arms[0].mrr_first_click.unwrap().value - 0.25).abs() < 1e-12);
        assert_eq!((r.orphan_actions, r.duplicate_actions), (1, 1));
        assert_eq!(r.arms[1].searches, 1);
        assert!(r.comparisons[0].verdict.starts_with("not enough data"));
        // the control can be named
        let r = experiment_report(&log, Some("treatment"));
        assert_eq!(r.arms[0].arm, "treatment");
    }

    #[test]
    fn a_real_difference_is_called_and_equal_arms_are_not() {
        let mut log = Vec::new();
        for i in 0..1000 {
            let (arm, clicked) = if i % 2 == 0 {
                ("control", i % 10 < 3) // even i: 0 and 2 of every 10, 40%
            } else {
                ("treatment", i % 10 < 9) // odd i: 1, 3, 5, 7 of every 10, 80%
            };
            let r = format!("r{i}");
            log.push(impression(&r, arm, "x", 0));
            if clicked {
                log.push(action(&r, "x", Action::Click, 0));
            }
        }
        let r = experiment_report(&log, None);
        let c = &r.comparisons[0];
        assert!(c.verdict.starts_with("treatment wins"), "{}", c.verdict);
        let mut same = Vec::new();
        for i in 0..1000 {
            let arm = if i % 2 == 0 { "control" } else { "treatment" };
            let r = format!("r{i}");
            same.push(impression(&r, arm, "x", 0));
            if (i / 2) % 3 == 0 {
                same.push(action(&r, "x", Action::Click, 0));
            }
        }
        let r = experiment_report(&same, None);
        assert!(
            r.comparisons[0]
                .verdict
                .starts_with("no significant difference"),
            "{}",
            r.comparisons[0].verdict
        );
        assert!(r.markdown().contains("| control | 500 |"));
    }
}

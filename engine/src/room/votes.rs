//! Tallying and deciding. Pure functions over the candidates (in the order they were added) and
//! the ballots, so that a tally is always recomputed from the ballots and can never drift from
//! them (the property tests hold the room to this).

use std::collections::BTreeMap;
use wagu_proto::ids::{ParticipantId, PlaceId};
use wagu_proto::model::{Candidate, Decision, TallyEntry, TieBreak, UnixMillis};

/// Votes per candidate, every candidate listed, in the order candidates were added.
pub fn tally(
    candidates: &[Candidate],
    ballots: &BTreeMap<ParticipantId, Vec<PlaceId>>,
) -> Vec<TallyEntry> {
    let mut out: Vec<TallyEntry> = candidates
        .iter()
        .map(|c| TallyEntry {
            place_id: c.place_id.clone(),
            votes: 0,
        })
        .collect();
    for choices in ballots.values() {
        for choice in choices {
            // Linear scan: a room holds at most 100 candidates and this runs once per change.
            if let Some(e) = out.iter_mut().find(|e| &e.place_id == choice) {
                e.votes += 1;
            }
        }
    }
    out
}

/// The decision for a tally: most votes wins; a tie goes to the candidate added first. With no
/// votes at all there is no winner.
pub fn decide(tally: Vec<TallyEntry>, closed_by: ParticipantId, now: UnixMillis) -> Decision {
    let max = tally.iter().map(|e| e.votes).max().unwrap_or(0);
    let (winner, tie_break) = if max == 0 {
        (None, TieBreak::None)
    } else {
        let tied = tally.iter().filter(|e| e.votes == max).count();
        // `tally` is in the order candidates were added, so the first maximum is the earliest.
        let first = tally
            .iter()
            .find(|e| e.votes == max)
            .map(|e| e.place_id.clone());
        let rule = if tied > 1 {
            TieBreak::EarliestAdded
        } else {
            TieBreak::None
        };
        (first, rule)
    };
    Decision {
        winner,
        tally,
        tie_break,
        closed_by,
        closed_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagu_proto::model::LatLng;

    fn cand(id: &str) -> Candidate {
        Candidate {
            place_id: PlaceId(id.into()),
            name: id.into(),
            location: LatLng { lat: 0.0, lng: 0.0 },
            note: None,
            added_by: ParticipantId(1),
            added_at: 0,
        }
    }

    #[test]
    fn tie_goes_to_earliest_added() {
        let cands = vec![cand("a"), cand("b"), cand("c")];
        let mut ballots = BTreeMap::new();
        ballots.insert(ParticipantId(1), vec![PlaceId("c".into())]);
        ballots.insert(ParticipantId(2), vec![PlaceId("b".into())]);
        let d = decide(tally(&cands, &ballots), ParticipantId(1), 5);
        assert_eq!(d.winner, Some(PlaceId("b".into())));
        assert_eq!(d.tie_break, TieBreak::EarliestAdded);
    }

    #[test]
    fn clear_winner_and_no_votes() {
        let cands = vec![cand("a"), cand("b")];
        let mut ballots = BTreeMap::new();
        ballots.insert(ParticipantId(1), vec![PlaceId("b".into())]);
        let d = decide(tally(&cands, &ballots), ParticipantId(1), 5);
        assert_eq!(
            (d.winner, d.tie_break),
            (Some(PlaceId("b".into())), TieBreak::None)
        );
        let d = decide(tally(&cands, &BTreeMap::new()), ParticipantId(1), 5);
        assert_eq!(d.winner, None);
    }
}

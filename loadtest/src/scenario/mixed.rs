//! The `mixed` scenario (Wagu only): the `rooms` workload and the `streams` workload at once,
//! against the same node(s), over one ramp, warmup and window, with one dialer, monitor and
//! progress. Both share the run's [`crate::stats::Stats`]: the rooms send presence only (no
//! room chat), so presence counters belong to the rooms and chat counters to the streams;
//! connections, joins, traffic, errors and the timeline cover both.

use crate::cli::MixedArgs;
use crate::report::{Detail, MixedDetail, RunResult};
use crate::scenario::{rooms, streams};
use crate::stats::C;

pub async fn run(args: MixedArgs) -> anyhow::Result<RunResult> {
    let (ra, sa) = (args.rooms_args(), args.streams_args());
    // Elsewhere a stream is a room, and both workloads would number theirs from 0.
    if args.common.target != crate::target::Target::Wagu {
        anyhow::bail!("the mixed scenario drives Wagu only: use --target wagu");
    }
    rooms::validate(&ra)?;
    streams::validate(&sa)?;
    let c = &args.common;
    let planned = rooms::planned(&ra) + streams::planned(&sa);
    let (mut run, shared) = crate::scenario::start(c, planned).await?;
    let stats = shared.stats.clone();
    let (rooms_ctx, mut workers) = rooms::launch(&ra, shared.clone(), &run);
    let (live, stream_workers) = streams::launch(&sa, shared);
    workers.extend(stream_workers);
    run.ramp(workers, planned as u64).await;
    let done = run.finish(|| live.chat_on()).await;
    let detail = Detail::Mixed(Box::new(MixedDetail {
        rooms: rooms::detail(&ra, &rooms_ctx, done.window),
        streams: live.detail(&sa, done.window),
    }));
    let delivered = stats.window(C::PresenceUpdatesIn) + stats.window(C::ChatIn);
    Ok(done.result(c, &stats, planned, detail, delivered))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn mixed_flags_split_into_both_workloads() {
        let cli = crate::cli::Cli::try_parse_from([
            "wagu-loadtest",
            "mixed",
            "--url",
            "http://127.0.0.1:1,http://127.0.0.1:2",
            "--rooms",
            "10",
            "--participants",
            "5",
            "--presence-hz",
            "2",
            "--streams",
            "1",
            "--viewers",
            "200",
            "--stream-chat-per-sec",
            "4",
            "--chatters",
            "2",
            "--spread-clients",
        ])
        .unwrap();
        let crate::cli::Command::Mixed(a) = cli.command else {
            panic!("not mixed")
        };
        let (r, s) = (a.rooms_args(), a.streams_args());
        assert_eq!(
            (r.rooms, r.participants, r.presence_hz, r.chat_per_min),
            (10, 5, 2.0, 0.0)
        );
        assert_eq!(
            (s.streams, s.viewers, s.chat_per_sec, s.chatters),
            (1, 200, 4.0, 2)
        );
        assert_eq!(r.common.url.len(), 2);
        assert!(s.common.spread_clients);
        assert!(super::rooms::validate(&r).is_ok() && super::streams::validate(&s).is_ok());
    }
}

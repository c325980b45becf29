//! The operation mix of the `records` scenario, and the small generator that draws from it.
//!
//! `--write-ratio` R is the share of writes: create and edit take R/2 each. Reads share the
//! rest by fixed weights (a map app reads viewports and post pages most). The shares, in % of
//! all operations at R = 0.2:
//!
//! | operation | request | share |
//! |---|---|---|
//! | `create_post` | `POST /api/posts` (with `Idempotency-Key`) | 10 |
//! | `edit_post` | `PATCH /api/posts/{own post}` | 10 |
//! | `read_post` | `GET /api/posts/{id}` | 16 |
//! | `author_feed` | `GET /api/accounts/{id}/posts` | 12 |
//! | `place_feed` | `GET /api/places/{id}/posts` | 12 |
//! | `near_feed` | `GET /api/posts?near=lat,lng&radius_km=3` | 12 |
//! | `name_search` | `GET /api/places?q=<prefix>` | 12 |
//! | `viewport` | `GET /api/places?bbox=…` | 16 |

/// One operation of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    CreatePost,
    EditPost,
    ReadPost,
    AuthorFeed,
    PlaceFeed,
    NearFeed,
    NameSearch,
    Viewport,
}

impl Op {
    /// Writes first, in the order of the report's table.
    pub const ALL: [Op; 8] = [
        Op::CreatePost,
        Op::EditPost,
        Op::ReadPost,
        Op::AuthorFeed,
        Op::PlaceFeed,
        Op::NearFeed,
        Op::NameSearch,
        Op::Viewport,
    ];

    /// The name in the JSON result and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Op::CreatePost => "create_post",
            Op::EditPost => "edit_post",
            Op::ReadPost => "read_post",
            Op::AuthorFeed => "author_feed",
            Op::PlaceFeed => "place_feed",
            Op::NearFeed => "near_feed",
            Op::NameSearch => "name_search",
            Op::Viewport => "viewport",
        }
    }

    pub fn is_write(self) -> bool {
        matches!(self, Op::CreatePost | Op::EditPost)
    }

    /// The weight within its group (writes, or reads); each group's weights sum to 1.
    fn weight_in_group(self) -> f64 {
        match self {
            Op::CreatePost | Op::EditPost => 0.5,
            Op::ReadPost | Op::Viewport => 0.2,
            Op::AuthorFeed | Op::PlaceFeed | Op::NearFeed | Op::NameSearch => 0.15,
        }
    }
}

/// The shares of a write ratio, and the draw.
#[derive(Clone, Debug)]
pub struct Mix {
    shares: [f64; 8],
    /// Running sums of `shares`, in [`Op::ALL`] order.
    cumulative: [f64; 8],
}

impl Mix {
    /// `write_ratio` is clamped to [0, 1].
    pub fn new(write_ratio: f64) -> Mix {
        let w = if write_ratio.is_nan() {
            0.0
        } else {
            write_ratio.clamp(0.0, 1.0)
        };
        let shares =
            Op::ALL.map(|op| op.weight_in_group() * if op.is_write() { w } else { 1.0 - w });
        let mut acc = 0.0;
        let cumulative = shares.map(|s| {
            acc += s;
            acc
        });
        Mix { shares, cumulative }
    }

    /// The share of `op` among all operations.
    pub fn share(&self, op: Op) -> f64 {
        self.shares[op as usize]
    }

    /// The operation a uniform draw `u` in [0, 1) stands for. An operation with no share is
    /// never picked.
    pub fn pick(&self, u: f64) -> Op {
        for (i, &c) in self.cumulative.iter().enumerate() {
            if u < c && self.shares[i] > 0.0 {
                return Op::ALL[i];
            }
        }
        // Rounding left the sum a hair under 1 and `u` above it: the last operation with a share.
        Op::ALL
            .into_iter()
            .rev()
            .find(|&op| self.share(op) > 0.0)
            .unwrap_or(Op::ReadPost)
    }
}

/// splitmix64: cheap, reproducible from `--seed`, and plenty for choosing operations and words.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_write_ratio() {
        for r in [0.0, 0.05, 0.2, 0.5, 1.0] {
            let m = Mix::new(r);
            let total: f64 = Op::ALL.iter().map(|&op| m.share(op)).sum();
            let writes: f64 = Op::ALL
                .iter()
                .filter(|op| op.is_write())
                .map(|&op| m.share(op))
                .sum();
            assert!((total - 1.0).abs() < 1e-9, "r={r}: total {total}");
            assert!((writes - r).abs() < 1e-9, "r={r}: writes {writes}");
            assert_eq!(m.share(Op::CreatePost), m.share(Op::EditPost));
        }
        let m = Mix::new(0.2);
        assert!((m.share(Op::CreatePost) - 0.1).abs() < 1e-9);
        assert!((m.share(Op::Viewport) - 0.16).abs() < 1e-9);
        assert!((m.share(Op::NameSearch) - 0.12).abs() < 1e-9);
        // Out-of-range ratios are clamped rather than producing negative shares.
        assert_eq!(Mix::new(7.0).share(Op::ReadPost), 0.0);
        assert_eq!(Mix::new(f64::NAN).share(Op::CreatePost), 0.0);
    }

    #[test]
    fn pick_maps_draws_onto_the_shares() {
        let m = Mix::new(0.2);
        assert_eq!(m.pick(0.0), Op::CreatePost);
        assert_eq!(m.pick(0.099), Op::CreatePost);
        assert_eq!(m.pick(0.1), Op::EditPost);
        assert_eq!(m.pick(0.2), Op::ReadPost);
        assert_eq!(m.pick(0.999_999), Op::Viewport);
        assert_eq!(
            m.pick(1.0),
            Op::Viewport,
            "past the end: the last op with a share"
        );
        // No writes: a draw of 0 is a read; only writes: every draw is a write.
        let reads = Mix::new(0.0);
        assert_eq!(reads.pick(0.0), Op::ReadPost);
        let writes = Mix::new(1.0);
        assert_eq!(writes.pick(0.7), Op::EditPost);
        assert_eq!(writes.pick(1.0), Op::EditPost);
        for i in 0..1000 {
            let u = i as f64 / 1000.0;
            assert!(!reads.pick(u).is_write());
            assert!(writes.pick(u).is_write());
        }
    }

    #[test]
    fn drawn_frequencies_match_the_shares() {
        let m = Mix::new(0.2);
        let mut rng = Rng::new(42);
        let n = 200_000;
        let mut counts = [0u32; 8];
        for _ in 0..n {
            counts[m.pick(rng.unit()) as usize] += 1;
        }
        for op in Op::ALL {
            let got = counts[op as usize] as f64 / n as f64;
            assert!(
                (got - m.share(op)).abs() < 0.005,
                "{}: drew {got:.4}, share {:.4}",
                op.name(),
                m.share(op)
            );
        }
    }

    #[test]
    fn rng_is_reproducible_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
        for _ in 0..1000 {
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(a.below(5) < 5);
            let x = a.between(-0.5, 0.5);
            assert!((-0.5..0.5).contains(&x));
        }
        assert_eq!(a.below(0), 0);
    }
}

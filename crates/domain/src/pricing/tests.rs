use std::collections::BTreeMap;

use proptest::prelude::*;
use time::Duration;
use time::macros::datetime;

use super::*;

fn pp(months: i64, amount: i64) -> PeriodPrice {
    PeriodPrice {
        period: Period::new(months).unwrap(),
        amount,
    }
}

fn option(code: &str, min: u32, max: u32, prices: Vec<PeriodPrice>) -> ProductOption {
    ProductOption {
        code: code.into(),
        name: code.to_uppercase(),
        min,
        max,
        prices,
    }
}

/// Base 1000/month, 2700/quarter; domains 150/month (1..=10); ssl 500/month (0..=1).
fn sample() -> ProductPricing {
    ProductPricing {
        prices: vec![pp(1, 1000), pp(3, 2700)],
        options: vec![
            option("domains", 1, 10, vec![pp(1, 150), pp(3, 400)]),
            option("ssl", 0, 1, vec![pp(3, 1200), pp(1, 500)]),
        ],
    }
}

fn opts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn fields(p: &ProductPricing) -> Vec<String> {
    p.validate()
        .unwrap_err()
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[test]
fn a_sound_catalog_validates() {
    assert_eq!(sample().validate(), Ok(()));
}

#[test]
fn validation_reports_every_violation_with_its_path() {
    let mut p = sample();
    p.prices.push(pp(1, -5));
    p.options[1].code = "domains".into();
    p.options[0].min = 11;
    p.options[0].prices.pop();
    p.options[1].prices.push(pp(12, 1));
    assert_eq!(
        fields(&p),
        vec![
            "prices[2].period_months",
            "prices[2].amount",
            "options[0].min",
            "options[0].prices",
            "options[1].code",
            "options[1].prices[2].period_months",
        ]
    );
}

#[test]
fn empty_prices_and_bad_codes_are_refused() {
    let p = ProductPricing::default();
    assert_eq!(fields(&p), vec!["prices"]);
    for bad in ["", "Upper", "-lead", "_lead", "sp ace", &"a".repeat(65)] {
        assert!(!is_valid_option_code(bad), "{bad:?}");
    }
    for good in ["a", "0", "extra-domains", "ssl_cert", &"a".repeat(64)] {
        assert!(is_valid_option_code(good), "{good:?}");
    }
    let mut p = sample();
    p.options[0].code = "Domains".into();
    p.options[1].name = "  ".into();
    p.options[1].prices[0].amount = -1;
    assert_eq!(
        fields(&p),
        vec![
            "options[0].code",
            "options[1].name",
            "options[1].prices[0].amount"
        ]
    );
}

#[test]
fn cost_is_base_plus_option_lines() {
    let p = sample();
    // Missing options count at min: domains 1, ssl 0.
    assert_eq!(p.cost(Period::M1, &BTreeMap::new()).unwrap(), 1000 + 150);
    assert_eq!(
        p.cost(Period::M3, &opts(&[("domains", 4), ("ssl", 1)]))
            .unwrap(),
        2700 + 4 * 400 + 1200
    );
    assert_eq!(p.price_for(Period::M3), Some(2700));
    assert_eq!(p.price_for(Period::M12), None);
}

#[test]
fn cost_refusals() {
    let p = sample();
    assert_eq!(
        p.cost(Period::M12, &BTreeMap::new()),
        Err(PricingError::PeriodNotOffered(Period::M12))
    );
    assert_eq!(
        p.cost(Period::M1, &opts(&[("backup", 1)])),
        Err(PricingError::UnknownOption("backup".into()))
    );
    assert_eq!(
        p.cost(Period::M1, &opts(&[("domains", 0)])),
        Err(PricingError::OptionOutOfBounds {
            code: "domains".into(),
            min: 1,
            max: 10,
            got: 0
        })
    );
    let huge = ProductPricing {
        prices: vec![pp(1, i64::MAX)],
        options: vec![option("x", 1, 1, vec![pp(1, 1)])],
    };
    assert_eq!(
        huge.cost(Period::M1, &BTreeMap::new()),
        Err(PricingError::AmountTooLarge)
    );
}

#[test]
fn costs_are_bounded_at_ten_to_the_fifteenth() {
    let max = crate::money::MAX_AMOUNT;
    let priced = |base: i64, unit: i64, max_qty: u32| ProductPricing {
        prices: vec![pp(1, base)],
        options: vec![option("x", 0, max_qty, vec![pp(1, unit)])],
    };
    // Exactly at the bound is a price; one minor unit more is not.
    assert_eq!(
        priced(max, 1, 1).cost(Period::M1, &opts(&[("x", 0)])),
        Ok(max)
    );
    assert_eq!(
        priced(max - 3, 1, 3).cost(Period::M1, &opts(&[("x", 3)])),
        Ok(max)
    );
    for (p, qty) in [
        // The base alone.
        (priced(max + 1, 0, 0), 0),
        (priced(i64::MAX, 0, 0), 0),
        // Base and a line each within, their sum beyond.
        (priced(max, 1, 1), 1),
        // A line beyond: unit price × quantity.
        (priced(0, max / 2 + 1, 2), 2),
        // Overflowing i64 on the way: the same error, never a wrap.
        (priced(0, i64::MAX / 2, u32::MAX), u32::MAX),
        (priced(0, max, u32::MAX), u32::MAX),
        (priced(i64::MAX, i64::MAX, 1), 1),
    ] {
        assert_eq!(
            p.cost(Period::M1, &opts(&[("x", qty)])),
            Err(PricingError::AmountTooLarge),
            "{p:?} × {qty}"
        );
    }
}

#[test]
fn normalize_fills_minimums() {
    let p = sample();
    assert_eq!(
        p.normalize_options(&opts(&[("ssl", 1)])).unwrap(),
        opts(&[("domains", 1), ("ssl", 1)])
    );
    assert!(matches!(
        p.normalize_options(&opts(&[("ssl", 2)])),
        Err(PricingError::OptionOutOfBounds { got: 2, .. })
    ));
}

#[test]
fn prorate_examples() {
    let start = datetime!(2024-01-01 00:00 UTC);
    let end = datetime!(2024-01-11 00:00 UTC);
    let mid = datetime!(2024-01-06 00:00 UTC);
    assert_eq!(prorate(1000, start, end, start).unwrap(), 1000);
    assert_eq!(prorate(1000, start, end, mid).unwrap(), 500);
    assert_eq!(prorate(1000, start, end, end).unwrap(), 0);
    // Before the term: full delta; after it: nothing.
    assert_eq!(
        prorate(1000, start, end, start - Duration::days(3)).unwrap(),
        1000
    );
    assert_eq!(
        prorate(1000, start, end, end + Duration::days(3)).unwrap(),
        0
    );
    // 1 × 5/10 = 0.5 → rounds away from zero.
    assert_eq!(prorate(1, start, end, mid).unwrap(), 1);
    assert_eq!(prorate(-1, start, end, mid).unwrap(), -1);
    // 3 × 4/10 = 1.2 → 1; 3 × 6/10 = 1.8 → 2.
    assert_eq!(
        prorate(3, start, end, datetime!(2024-01-07 00:00 UTC)).unwrap(),
        1
    );
    assert_eq!(
        prorate(3, start, end, datetime!(2024-01-05 00:00 UTC)).unwrap(),
        2
    );
    assert_eq!(prorate(i64::MAX, start, end, start).unwrap(), i64::MAX);
    assert_eq!(prorate(i64::MIN, start, end, start).unwrap(), i64::MIN);
    assert_eq!(prorate(1000, end, start, mid).unwrap(), 0);
}

fn catalog() -> impl Strategy<Value = ProductPricing> {
    let unit = 0_i64..1_000_000;
    let opt = (0_u32..20, 0_u32..50, unit.clone(), unit.clone());
    (unit.clone(), unit, prop::collection::vec(opt, 0..4)).prop_map(|(b1, b12, raw)| {
        let options = raw
            .into_iter()
            .enumerate()
            .map(|(i, (min, span, u1, u12))| {
                option(
                    &format!("o{i}"),
                    min,
                    min + span,
                    vec![pp(1, u1), pp(12, u12)],
                )
            })
            .collect();
        ProductPricing {
            prices: vec![pp(1, b1), pp(12, b12)],
            options,
        }
    })
}

fn any_period() -> impl Strategy<Value = Period> {
    prop_oneof![Just(Period::M1), Just(Period::M12)]
}

/// Quantities within bounds, derived from fractions so they fit any generated option.
fn quantities(p: &ProductPricing, fractions: &[u32]) -> BTreeMap<String, u32> {
    p.options
        .iter()
        .zip(fractions)
        .map(|(o, f)| (o.code.clone(), o.min + f % (o.max - o.min + 1)))
        .collect()
}

proptest! {
    #[test]
    fn generated_catalogs_validate(p in catalog()) {
        prop_assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn cost_matches_hand_computation(
        p in catalog(), period in any_period(), f in prop::collection::vec(any::<u32>(), 4)
    ) {
        let q = quantities(&p, &f);
        let mut expected = p.price_for(period).unwrap();
        for o in &p.options {
            expected += i64::from(q[&o.code]) * o.price_for(period).unwrap();
        }
        prop_assert_eq!(p.cost(period, &q).unwrap(), expected);
    }

    #[test]
    fn cost_is_monotone_in_each_quantity(
        p in catalog(), period in any_period(), f in prop::collection::vec(any::<u32>(), 4),
        which in 0_usize..4,
    ) {
        prop_assume!(which < p.options.len());
        let q = quantities(&p, &f);
        let o = &p.options[which];
        let before = p.cost(period, &q).unwrap();
        let mut more = q.clone();
        let bumped = (q[&o.code] + 1).min(o.max);
        more.insert(o.code.clone(), bumped);
        prop_assert!(p.cost(period, &more).unwrap() >= before);
    }

    #[test]
    fn prorate_bounds_and_symmetry(
        delta in any::<i64>(), start in 0_i64..2_000_000_000, len in 1_i64..200_000_000,
        at in -100_000_000_i64..400_000_000,
    ) {
        let s = time::OffsetDateTime::from_unix_timestamp(start).unwrap();
        let e = s + Duration::seconds(len);
        let now = s + Duration::seconds(at);
        let r = prorate(delta, s, e, now).unwrap();
        prop_assert!(r.unsigned_abs() <= delta.unsigned_abs());
        prop_assert_eq!(prorate(delta, s, e, s).unwrap(), delta);
        prop_assert_eq!(prorate(delta, s, e, e).unwrap(), 0);
        if delta != i64::MIN {
            prop_assert_eq!(prorate(-delta, s, e, now).unwrap(), -r);
        }
    }

    #[test]
    fn prorate_is_monotone_in_time_left(
        delta in 0_i64..1_000_000_000_000, len in 1_i64..100_000_000,
        a in 0_i64..100_000_000, b in 0_i64..100_000_000,
    ) {
        let s = datetime!(2024-01-01 00:00 UTC);
        let e = s + Duration::seconds(len);
        let (early, late) = (a.min(b), a.max(b));
        let r_early = prorate(delta, s, e, s + Duration::seconds(early)).unwrap();
        let r_late = prorate(delta, s, e, s + Duration::seconds(late)).unwrap();
        prop_assert!(r_early >= r_late);
    }
}

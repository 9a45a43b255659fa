//! How tests that need real data (`../shared/data`, `../shared/reference`) behave without it.
//!
//! On a checkout without the data they skip with a line saying why. With
//! `UNISIGHT_REQUIRE_DATA=1` (set by `.ci/run`, where the data is present) a missing data set
//! fails the test instead, so a suite with its data cannot pass by skipping.

/// The environment variable that turns a skip for lack of data into a failure.
pub const REQUIRE_DATA_ENV: &str = "UNISIGHT_REQUIRE_DATA";

/// Skips the calling test for lack of data (`reason` says which), or panics when
/// [`REQUIRE_DATA_ENV`] is set to anything but `0` or empty.
///
/// # Panics
/// When data is required and missing: that is the test failing.
pub fn skip_for_lack_of_data(reason: &str) {
    let required = std::env::var(REQUIRE_DATA_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    if required {
        panic!("{reason}, and {REQUIRE_DATA_ENV} is set: this test may not skip");
    }
    eprintln!("skipped: {reason}");
}

//! `cfg(licentia_pg)` when the suite is built with `LICENTIA_TEST_DATABASE_URL` set: the
//! PostgreSQL variants of the tests run then, and are reported as ignored ("skipped: …")
//! otherwise, instead of passing without having run.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(licentia_pg)");
    println!("cargo::rerun-if-env-changed=LICENTIA_TEST_DATABASE_URL");
    if std::env::var_os("LICENTIA_TEST_DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=licentia_pg");
    }
}

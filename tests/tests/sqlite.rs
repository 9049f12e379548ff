//! Every conformance case against SQLite: a fresh database file per case.
#![cfg(feature = "sqlite")]

use s3o_conformance::harness::EngineKind;

const ENGINE: EngineKind = EngineKind::Sqlite;

macro_rules! engine_tests {
    ($($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        $(mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    s3o_conformance::harness::run_test(
                        super::ENGINE,
                        s3o_conformance::Case {
                            name: concat!(stringify!($module), "::", stringify!($name)),
                            run: |store| Box::pin(s3o_conformance::$module::$name(store)),
                        },
                    )
                    .await;
                }
            )*
        })*
    };
}

s3o_conformance::for_each_case!(engine_tests);

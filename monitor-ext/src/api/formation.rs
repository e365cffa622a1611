//! `create_formation` and `drop_formation`.

use crate::fcinfo::{record, v1_function, Args, Value};
use crate::operation::call;
use pgaf_fsm::{MonitorError, SqlState};
use pgrx::pg_sys;

v1_function!(
    pg_finfo_pgaf_create_formation,
    pgaf_create_formation,
    create
);
v1_function!(pg_finfo_pgaf_drop_formation, pgaf_drop_formation, drop);

fn create(args: Args) -> pg_sys::Datum {
    let id: String = args.get(0, "formation_id");
    let kind: String = args.get(1, "kind");
    let dbname = args.name(2, "dbname");
    let opt_secondary: bool = args.get(3, "opt_secondary");
    let nss: i32 = args.get(4, "number_sync_standbys");
    let kind = match kind.as_str() {
        "pgsql" | "citus" => kind,
        // Stored as is: the CHECK constraint refuses it (23514), as upstream.
        "" | "unknown" => "unknown".to_string(),
        other => crate::error::fail(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("unknown formation kind \"{other}\""),
        ),
    };
    call(|client| {
        crate::spi::run(
            client,
            "INSERT INTO pgautofailover.formation \
                   (formationid, kind, dbname, opt_secondary, number_sync_standbys) \
                 VALUES ($1, $2, $3::name, $4, $5)",
            None,
            &[
                id.as_str().into(),
                kind.as_str().into(),
                dbname.as_str().into(),
                opt_secondary.into(),
                nss.into(),
            ],
        )?;
        Ok(())
    });
    record(
        args,
        vec![
            Value::of(id.as_str()),
            Value::of(kind.as_str()),
            Value::name(&dbname),
            Value::of(opt_secondary),
            Value::of(nss),
        ],
    )
}

fn drop(args: Args) -> pg_sys::Datum {
    let id: String = args.get(0, "formation_id");
    call(|client| {
        let deleted = crate::spi::run(
            client,
            "DELETE FROM pgautofailover.formation WHERE formationid = $1 RETURNING 1",
            None,
            &[id.as_str().into()],
        )?;
        if deleted.is_empty() {
            return Err(MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("couldn't find formation \"{id}\""),
            ));
        }
        Ok(())
    });
    pgrx::fcinfo::pg_return_void()
}

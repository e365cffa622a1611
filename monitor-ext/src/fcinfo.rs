//! Arguments and results of the V1 (`LANGUAGE C`) functions: typed argument
//! access with a clear error for NULLs, and composite results built from
//! the function's declared OUT columns.

use crate::error;
use pgaf_fsm::{Lsn, NodeState, SqlState};
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg, pg_getarg_datum_raw};
use pgrx::{pg_sys, FromDatum, IntoDatum};
use std::ffi::CStr;

/// The record Postgres looks up through `pg_finfo_<symbol>`.
pub static V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };

/// Declare a V1 function `$symbol` (and its info record `$finfo`) that
/// calls `$body(fcinfo)` under `pg_guard`.
macro_rules! v1_function {
    ($finfo:ident, $symbol:ident, $body:path) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            &$crate::fcinfo::V1_API
        }

        #[::pgrx::pg_guard]
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub unsafe extern "C-unwind" fn $symbol(
            fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
        ) -> ::pgrx::pg_sys::Datum {
            $body($crate::fcinfo::Args(fcinfo))
        }
    };
}
pub(crate) use v1_function;

/// The arguments of one call.
#[derive(Clone, Copy)]
pub struct Args(pub pg_sys::FunctionCallInfo);

fn null_argument(name: &str) -> ! {
    error::fail(
        SqlState("22004"),
        format!("argument \"{name}\" must not be NULL"),
    )
}

impl Args {
    fn is_null(self, n: usize) -> bool {
        // SAFETY: fcinfo comes from Postgres for this call; `n` is within the
        // declared arguments of the SQL signature using this symbol.
        unsafe { (*self.0).nargs as usize <= n || pg_arg_is_null(self.0, n) }
    }

    /// A nullable argument.
    pub fn opt<T: FromDatum>(self, n: usize) -> Option<T> {
        if self.is_null(n) {
            return None;
        }
        // SAFETY: as above; `T` matches the SQL type of argument `n`.
        unsafe { pg_getarg::<T>(self.0, n) }
    }

    /// A required argument (STRICT functions never see NULL).
    pub fn get<T: FromDatum>(self, n: usize, name: &str) -> T {
        self.opt(n).unwrap_or_else(|| null_argument(name))
    }

    fn raw(self, n: usize, name: &str) -> pg_sys::Datum {
        if self.is_null(n) {
            null_argument(name);
        }
        // SAFETY: as above, and the argument is not NULL.
        unsafe { pg_getarg_datum_raw(self.0, n) }
    }

    /// A `pgautofailover.replication_state` argument.
    pub fn state(self, n: usize, name: &str) -> NodeState {
        let oid = pg_sys::Oid::from(self.raw(n, name).value() as u32);
        let (label, _, _) = pgrx::enum_helper::lookup_enum_by_oid(oid);
        match label.parse::<NodeState>() {
            Ok(s) if s != NodeState::Unknown => s,
            _ => error::fail(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for {name}: \"{label}\""),
            ),
        }
    }

    /// A `pg_lsn` argument.
    pub fn lsn(self, n: usize, name: &str) -> Lsn {
        Lsn(self.raw(n, name).value() as u64)
    }

    /// A `name` argument.
    pub fn name(self, n: usize, what: &str) -> String {
        let datum = self.raw(n, what);
        // SAFETY: a `name` datum points to a NUL-terminated NameData.
        let cstr = unsafe { CStr::from_ptr(datum.cast_mut_ptr::<std::ffi::c_char>()) };
        cstr.to_string_lossy().into_owned()
    }
}

/// A value of a result column.
pub enum Value {
    Null,
    Datum(pg_sys::Datum),
}

impl Value {
    pub fn of<T: IntoDatum>(v: T) -> Value {
        match v.into_datum() {
            Some(d) => Value::Datum(d),
            None => Value::Null,
        }
    }

    /// A `pgautofailover.replication_state` value.
    pub fn state(s: NodeState) -> Value {
        Value::Datum(pgrx::enum_helper::lookup_enum_by_label(
            "pgautofailover.replication_state",
            s.as_str(),
        ))
    }

    /// A `name` value.
    pub fn name(s: &str) -> Value {
        let len = pg_sys::NAMEDATALEN as usize;
        // SAFETY: palloc0 returns zeroed memory of the requested size in the
        // current (per-call) memory context.
        let ptr = unsafe { pg_sys::palloc0(len) } as *mut u8;
        let bytes = s.as_bytes();
        let n = bytes.len().min(len - 1);
        // SAFETY: `ptr` has `len` bytes and `n < len`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, n) };
        Value::Datum(pg_sys::Datum::from(ptr))
    }
}

/// Build the composite result of the call from its OUT columns.
pub fn record(args: Args, values: Vec<Value>) -> pg_sys::Datum {
    let mut typoid = pg_sys::Oid::INVALID;
    let mut tupdesc: pg_sys::TupleDesc = std::ptr::null_mut();
    // SAFETY: fcinfo is valid for this call; the out-parameters are valid.
    let class = unsafe { pg_sys::get_call_result_type(args.0, &mut typoid, &mut tupdesc) };
    if class != pg_sys::TypeFuncClass::TYPEFUNC_COMPOSITE || tupdesc.is_null() {
        error::fail(
            SqlState("42804"),
            "function returning record called in context that cannot accept type record",
        );
    }
    // SAFETY: tupdesc was just returned by Postgres.
    let natts = unsafe { (*tupdesc).natts } as usize;
    if natts != values.len() {
        error::fail(
            SqlState::INTERNAL_ERROR,
            format!(
                "pgautofailover: {natts} result columns declared, {} produced",
                values.len()
            ),
        );
    }
    let mut datums: Vec<pg_sys::Datum> = Vec::with_capacity(natts);
    let mut nulls: Vec<bool> = Vec::with_capacity(natts);
    for v in values {
        match v {
            Value::Null => {
                datums.push(pg_sys::Datum::from(0));
                nulls.push(true);
            }
            Value::Datum(d) => {
                datums.push(d);
                nulls.push(false);
            }
        }
    }
    // SAFETY: tupdesc is a valid descriptor with `natts` columns and the two
    // arrays have exactly that many entries.
    unsafe {
        let tupdesc = pg_sys::BlessTupleDesc(tupdesc);
        let tuple = pg_sys::heap_form_tuple(tupdesc, datums.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)
    }
}

/// A scalar result (booleans, integers and text are never NULL).
pub fn scalar<T: IntoDatum>(v: T) -> pg_sys::Datum {
    v.into_datum().unwrap_or(pg_sys::Datum::from(0))
}

//! `pg_autoproxy`: follows the monitor's notifications and relays client
//! connections to the current primary (or to healthy secondaries on a
//! read-only listener). The routing and relay code lands here with the
//! proxy issue.

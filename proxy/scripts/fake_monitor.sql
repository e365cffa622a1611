-- A stand-in for the pg_auto_failover monitor, for manual checks and
-- benchmarks of pg_autoproxy without keepers: the parts of the SQL API the
-- proxy uses (current_state(formation, group) and the `state` NOTIFY
-- payload), over a plain table you update by hand:
--
--   UPDATE pgautofailover.node SET goalstate = 'draining' WHERE nodeid = 1;
--
-- Each update notifies `state` like the monitor does. Not the real monitor:
-- no FSM, no health checks, no keeper protocol.
CREATE SCHEMA IF NOT EXISTS pgautofailover;

DO $$ BEGIN
  CREATE TYPE pgautofailover.replication_state AS ENUM (
    'unknown', 'init', 'single', 'wait_primary', 'primary', 'draining',
    'demote_timeout', 'demoted', 'catchingup', 'secondary',
    'prepare_promotion', 'stop_replication', 'wait_standby', 'maintenance',
    'join_primary', 'apply_settings', 'prepare_maintenance',
    'wait_maintenance', 'report_lsn', 'fast_forward', 'join_secondary',
    'dropped');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS pgautofailover.node (
  formationid text NOT NULL DEFAULT 'default',
  nodeid bigint PRIMARY KEY,
  groupid int NOT NULL DEFAULT 0,
  nodename text NOT NULL,
  nodehost text NOT NULL,
  nodeport int NOT NULL,
  reportedstate pgautofailover.replication_state NOT NULL DEFAULT 'init',
  goalstate pgautofailover.replication_state NOT NULL DEFAULT 'init',
  candidatepriority int NOT NULL DEFAULT 50,
  replicationquorum bool NOT NULL DEFAULT true,
  reportedtli int NOT NULL DEFAULT 1,
  reportedlsn pg_lsn NOT NULL DEFAULT '0/0',
  health int NOT NULL DEFAULT -1,
  nodecluster text NOT NULL DEFAULT 'default'
);

CREATE OR REPLACE FUNCTION pgautofailover.current_state(
    formation_id text, group_id int,
    OUT formation_kind text, OUT nodename text, OUT nodehost text,
    OUT nodeport int, OUT group_id int, OUT node_id bigint,
    OUT current_group_state pgautofailover.replication_state,
    OUT assigned_group_state pgautofailover.replication_state,
    OUT candidate_priority int, OUT replication_quorum bool,
    OUT reported_tli int, OUT reported_lsn pg_lsn, OUT health integer,
    OUT nodecluster text)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
  SELECT 'pgsql', nodename, nodehost, nodeport, groupid, nodeid,
         reportedstate, goalstate, candidatepriority, replicationquorum,
         reportedtli, reportedlsn, health, nodecluster
    FROM pgautofailover.node
   WHERE formationid = $1 AND groupid = $2
   ORDER BY groupid, nodeid
$$;

CREATE OR REPLACE FUNCTION pgautofailover.notify_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('state', format(
    '{"type": "state", "formation": %s, "groupId": %s, "nodeId": %s, "name": %s, "host": %s, "port": %s, "reportedState": "%s", "goalState": "%s", "health":"%s"}',
    to_json(NEW.formationid), NEW.groupid, NEW.nodeid, to_json(NEW.nodename),
    to_json(NEW.nodehost), NEW.nodeport, NEW.reportedstate, NEW.goalstate,
    CASE NEW.health WHEN 1 THEN 'good' WHEN 0 THEN 'bad' ELSE 'unknown' END));
  RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS notify_state ON pgautofailover.node;
CREATE TRIGGER notify_state AFTER INSERT OR UPDATE ON pgautofailover.node
  FOR EACH ROW EXECUTE FUNCTION pgautofailover.notify_state();

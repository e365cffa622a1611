-- The catalog and SQL API of the pgautofailover extension, version 2.0
-- (identical through 2.2), written for the Rust monitor. Functions marked
-- LANGUAGE C are thin Rust entry points in src/api/; see README.md.

\echo Use "CREATE EXTENSION pgautofailover" to load this file. \quit

DO $body$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'autoctl_node')
    THEN
        CREATE ROLE autoctl_node WITH LOGIN;
    END IF;
END
$body$;

-- As upstream: the extension itself belongs to the schema it is created in
-- (public, as \dx shows), its objects to the schema it creates.
CREATE SCHEMA pgautofailover;
GRANT USAGE ON SCHEMA pgautofailover TO autoctl_node;

CREATE TYPE pgautofailover.replication_state AS ENUM
 (
    'unknown',
    'init',
    'single',
    'wait_primary',
    'primary',
    'draining',
    'demote_timeout',
    'demoted',
    'catchingup',
    'secondary',
    'prepare_promotion',
    'stop_replication',
    'wait_standby',
    'maintenance',
    'join_primary',
    'apply_settings',
    'prepare_maintenance',
    'wait_maintenance',
    'report_lsn',
    'fast_forward',
    'join_secondary',
    'dropped'
 );

CREATE TABLE pgautofailover.formation
 (
    formationid          text NOT NULL DEFAULT 'default',
    kind                 text NOT NULL DEFAULT 'pgsql',
    dbname               name NOT NULL DEFAULT 'postgres',
    opt_secondary        bool NOT NULL DEFAULT true,
    number_sync_standbys int  NOT NULL DEFAULT 0,
    PRIMARY KEY (formationid),
    CHECK (kind IN ('pgsql', 'citus'))
 );

INSERT INTO pgautofailover.formation (formationid) VALUES ('default');

CREATE FUNCTION pgautofailover.update_secondary_check()
  RETURNS trigger
  LANGUAGE plpgsql
AS $$
declare
  nodeid        bigint := null;
  reportedstate pgautofailover.replication_state := null;
begin
  -- Refuse to disable secondaries while some node is not alone.
  if old.opt_secondary and not new.opt_secondary
  then
    select node.nodeid, node.reportedstate
      into nodeid, reportedstate
      from pgautofailover.node
     where node.formationid = new.formationid
       and node.reportedstate <> 'single'
       and node.goalstate <> 'dropped'
     order by node.nodeid
     limit 1;

    if nodeid is not null
    then
      raise exception object_not_in_prerequisite_state
        using
          message = 'formation has nodes that are not in SINGLE state',
          detail = format('nodeid %s is in state %s', nodeid, reportedstate),
          hint = 'drop secondary nodes before disabling secondaries on formation';
    end if;
  end if;

  return new;
end
$$;

CREATE TRIGGER disable_secondary_check
  BEFORE UPDATE ON pgautofailover.formation
  FOR EACH ROW
  EXECUTE PROCEDURE pgautofailover.update_secondary_check();

CREATE TABLE pgautofailover.node
 (
    formationid          text NOT NULL DEFAULT 'default',
    nodeid               bigserial,
    groupid              int NOT NULL,
    nodename             text NOT NULL,
    nodehost             text NOT NULL,
    nodeport             int NOT NULL,
    sysidentifier        bigint,
    goalstate            pgautofailover.replication_state NOT NULL DEFAULT 'init',
    reportedstate        pgautofailover.replication_state NOT NULL,
    reportedpgisrunning  bool DEFAULT true,
    reportedrepstate     text DEFAULT 'async',
    reporttime           timestamptz NOT NULL DEFAULT now(),
    reportedtli          int NOT NULL DEFAULT 1 CHECK (reportedtli > 0),
    reportedlsn          pg_lsn NOT NULL DEFAULT '0/0',
    walreporttime        timestamptz NOT NULL DEFAULT now(),
    health               integer NOT NULL DEFAULT -1,
    healthchecktime      timestamptz NOT NULL DEFAULT now(),
    statechangetime      timestamptz NOT NULL DEFAULT now(),
    candidatepriority    int NOT NULL DEFAULT 100,
    replicationquorum    bool NOT NULL DEFAULT true,
    nodecluster          text NOT NULL DEFAULT 'default',

    -- a node is the same Postgres as the others of its group
    CONSTRAINT system_identifier_is_null_at_init_only
         CHECK (
                 (
                     sysidentifier IS NULL
                 AND reportedstate IN ('init', 'wait_standby', 'catchingup', 'dropped')
                 )
              OR sysidentifier IS NOT NULL
               ),

    CONSTRAINT same_system_identifier_within_group
       EXCLUDE USING gist(formationid with =,
                          groupid with =,
                          sysidentifier with <>)
       DEFERRABLE INITIALLY DEFERRED,

    PRIMARY KEY (nodeid),
    UNIQUE (formationid, nodename),
    UNIQUE (nodehost, nodeport),
    FOREIGN KEY (formationid) REFERENCES pgautofailover.formation(formationid)
 )
 -- every report updates a row: leave room for HOT updates
 WITH (fillfactor = 25);

-- Ours: what the monitor knows of each keeper beyond the upstream catalog
-- (see docs/failover.md): whether it renews a lease, the goal it last
-- received (NULL: its current goal), on a standby the node its WAL receiver
-- streams from and how long ago it heard from it, when its primary last
-- listed it among the standbys replying to it, and on a primary whether its
-- keeper lists them.
CREATE TABLE pgautofailover.node_lease
 (
    nodeid    bigint PRIMARY KEY
              REFERENCES pgautofailover.node(nodeid) ON DELETE CASCADE,
    lease     boolean NOT NULL DEFAULT false,
    delivered pgautofailover.replication_state,
    upstreamnodeid bigint NOT NULL DEFAULT 0,
    upstreamagems int NOT NULL DEFAULT -1,
    streamedtime timestamptz NOT NULL DEFAULT 'epoch',
    reportsstandbys boolean NOT NULL DEFAULT false
 )
 WITH (fillfactor = 25);

CREATE TABLE pgautofailover.event
 (
    eventid           bigserial NOT NULL,
    eventtime         timestamptz NOT NULL DEFAULT now(),
    formationid       text NOT NULL,
    nodeid            bigint NOT NULL,
    groupid           int NOT NULL,
    nodename          text NOT NULL,
    nodehost          text NOT NULL,
    nodeport          integer NOT NULL,
    reportedstate     pgautofailover.replication_state NOT NULL,
    goalstate         pgautofailover.replication_state NOT NULL,
    reportedrepstate  text,
    reportedtli       int NOT NULL DEFAULT 1 CHECK (reportedtli > 0),
    reportedlsn       pg_lsn NOT NULL DEFAULT '0/0',
    candidatepriority int,
    replicationquorum bool,
    description       text,

    PRIMARY KEY (eventid)
 );

GRANT SELECT ON ALL TABLES IN SCHEMA pgautofailover TO autoctl_node;

-- Formations

CREATE FUNCTION pgautofailover.create_formation
 (
    IN formation_id         text,
    IN kind                 text,
    IN dbname               name,
    IN opt_secondary        bool,
    IN number_sync_standbys int,
   OUT formation_id         text,
   OUT kind                 text,
   OUT dbname               name,
   OUT opt_secondary        bool,
   OUT number_sync_standbys int
 )
RETURNS record LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_create_formation';

GRANT EXECUTE ON FUNCTION
      pgautofailover.create_formation(text,text,name,bool,int)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.drop_formation
 (
    IN formation_id text
 )
RETURNS void LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_drop_formation';

GRANT EXECUTE ON FUNCTION pgautofailover.drop_formation(text) TO autoctl_node;

CREATE FUNCTION pgautofailover.set_formation_number_sync_standbys
 (
    IN formation_id         text,
    IN number_sync_standbys int
 )
RETURNS bool LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_set_formation_number_sync_standbys';

GRANT EXECUTE ON FUNCTION
      pgautofailover.set_formation_number_sync_standbys(text, int)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.enable_secondary
 (
    IN formation_id text
 )
RETURNS bool LANGUAGE SQL STRICT SECURITY DEFINER
AS $$
  -- Ours: true on success (upstream always returned false).
  with updated as (
      update pgautofailover.formation
         set opt_secondary = true
       where formationid = $1
   returning 1
  )
  select count(*) > 0 from updated;
$$;

CREATE FUNCTION pgautofailover.disable_secondary
 (
    IN formation_id text
 )
RETURNS bool LANGUAGE SQL STRICT SECURITY DEFINER
AS $$
  -- Ours: true on success (upstream always returned false).
  with updated as (
      update pgautofailover.formation
         set opt_secondary = false
       where formationid = $1
   returning 1
  )
  select count(*) > 0 from updated;
$$;

-- System identifiers

CREATE FUNCTION pgautofailover.set_node_system_identifier
 (
    IN node_id           bigint,
    IN node_sysidentifier bigint,
   OUT node_id           bigint,
   OUT node_name         text,
   OUT node_host         text,
   OUT node_port         int
 )
RETURNS record LANGUAGE SQL STRICT SECURITY DEFINER
AS $$
      update pgautofailover.node
         set sysidentifier = node_sysidentifier
       where nodeid = set_node_system_identifier.node_id
   returning nodeid, nodename, nodehost, nodeport;
$$;

GRANT EXECUTE ON FUNCTION
      pgautofailover.set_node_system_identifier(bigint,bigint)
   TO autoctl_node;

-- Ours: also matches NULL, which register_node stores for an unknown
-- system identifier (upstream matched 0 only).
CREATE FUNCTION pgautofailover.set_group_system_identifier
 (
    IN group_id           bigint,
    IN node_sysidentifier bigint,
   OUT node_id            bigint,
   OUT node_name          text,
   OUT node_host          text,
   OUT node_port          int
 )
RETURNS setof record LANGUAGE SQL STRICT SECURITY DEFINER
AS $$
      update pgautofailover.node
         set sysidentifier = node_sysidentifier
       where groupid = set_group_system_identifier.group_id
         and (sysidentifier = 0 or sysidentifier is null)
   returning nodeid, nodename, nodehost, nodeport;
$$;

GRANT EXECUTE ON FUNCTION
      pgautofailover.set_group_system_identifier(bigint,bigint)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.update_node_metadata
  (
     IN node_id   bigint,
     IN node_name text,
     IN node_host text,
     IN node_port int
  )
RETURNS boolean LANGUAGE C SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_update_node_metadata';

GRANT EXECUTE ON FUNCTION
      pgautofailover.update_node_metadata(bigint,text,text,int)
   TO autoctl_node;

-- The keeper protocol

CREATE FUNCTION pgautofailover.register_node
 (
    IN formation_id         text,
    IN node_host            text,
    IN node_port            int,
    IN dbname               name,
    IN node_name            text default '',
    IN sysidentifier        bigint default 0,
    IN desired_node_id      bigint default -1,
    IN desired_group_id     int default -1,
    IN initial_group_role   pgautofailover.replication_state default 'init',
    IN node_kind            text default 'standalone',
    IN candidate_priority   int default 100,
    IN replication_quorum   bool default true,
    IN node_cluster         text default 'default',
   OUT assigned_node_id     bigint,
   OUT assigned_group_id    int,
   OUT assigned_group_state pgautofailover.replication_state,
   OUT assigned_candidate_priority int,
   OUT assigned_replication_quorum bool,
   OUT assigned_node_name   text
 )
RETURNS record LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_register_node';

GRANT EXECUTE ON FUNCTION
      pgautofailover.register_node(text,text,int,name,text,bigint,bigint,int,
                                   pgautofailover.replication_state,text,
                                   int,bool,text)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.node_active
 (
    IN formation_id           text,
    IN node_id                bigint,
    IN group_id               int,
    IN current_group_role     pgautofailover.replication_state default 'init',
    IN current_pg_is_running  bool default true,
    IN current_tli            integer default 1,
    IN current_lsn            pg_lsn default '0/0',
    IN current_rep_state      text default '',
   OUT assigned_node_id       bigint,
   OUT assigned_group_id      int,
   OUT assigned_group_state   pgautofailover.replication_state,
   OUT assigned_candidate_priority int,
   OUT assigned_replication_quorum bool
 )
RETURNS record LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_node_active';

GRANT EXECUTE ON FUNCTION
      pgautofailover.node_active(text,bigint,int,
                          pgautofailover.replication_state,bool,int,pg_lsn,text)
   TO autoctl_node;

-- Ours: node_active for keepers that hold a lease (see docs/failover.md),
-- and say who streams from whom: on a standby the node its WAL receiver
-- streams from and how many ms ago it heard from it, on a primary the
-- standbys (node ids) replying to it (NULL: not reported). Not STRICT: the
-- last argument may be NULL, the others may not.
CREATE FUNCTION pgautofailover.node_active_lease
 (
    IN formation_id           text,
    IN node_id                bigint,
    IN group_id               int,
    IN current_group_role     pgautofailover.replication_state default 'init',
    IN current_pg_is_running  bool default true,
    IN current_tli            integer default 1,
    IN current_lsn            pg_lsn default '0/0',
    IN current_rep_state      text default '',
    IN upstream_node_id       bigint default 0,
    IN upstream_age_ms        int default -1,
    IN streaming_standbys     bigint[] default NULL,
   OUT assigned_node_id       bigint,
   OUT assigned_group_id      int,
   OUT assigned_group_state   pgautofailover.replication_state,
   OUT assigned_candidate_priority int,
   OUT assigned_replication_quorum bool,
   OUT lease_timeout_ms       int,
   OUT fence_timeout_ms       int
 )
RETURNS record LANGUAGE C SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_node_active_lease';

GRANT EXECUTE ON FUNCTION
      pgautofailover.node_active_lease(text,bigint,int,
                          pgautofailover.replication_state,bool,int,pg_lsn,text,
                          bigint,int,bigint[])
   TO autoctl_node;

CREATE FUNCTION pgautofailover.get_nodes
 (
    IN formation_id     text default 'default',
    IN group_id         int default NULL,
   OUT node_id          bigint,
   OUT node_name        text,
   OUT node_host        text,
   OUT node_port        int,
   OUT node_lsn         pg_lsn,
   OUT node_is_primary  bool
 )
RETURNS SETOF record LANGUAGE SQL
AS $$
   select nodeid, nodename, nodehost, nodeport, reportedlsn,
          reportedstate in ('single', 'wait_primary', 'primary',
                            'join_primary', 'apply_settings')
     from pgautofailover.node
    where node.formationid = get_nodes.formation_id
      and (get_nodes.group_id is null or node.groupid = get_nodes.group_id)
 order by node.groupid, node.nodeid;
$$;

COMMENT ON FUNCTION pgautofailover.get_nodes(text,int)
        IS 'get all the nodes in a group';

GRANT EXECUTE ON FUNCTION pgautofailover.get_nodes(text,int) TO autoctl_node;

CREATE FUNCTION pgautofailover.get_primary
 (
    IN formation_id      text default 'default',
    IN group_id          int default 0,
   OUT primary_node_id   bigint,
   OUT primary_name      text,
   OUT primary_host      text,
   OUT primary_port      int
 )
RETURNS record LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_get_primary';

COMMENT ON FUNCTION pgautofailover.get_primary(text,int)
        IS 'get the writable node for a group';

GRANT EXECUTE ON FUNCTION pgautofailover.get_primary(text,int) TO autoctl_node;

CREATE FUNCTION pgautofailover.get_other_nodes
 (
    IN nodeid           bigint,
   OUT node_id          bigint,
   OUT node_name        text,
   OUT node_host        text,
   OUT node_port        int,
   OUT node_lsn         pg_lsn,
   OUT node_is_primary  bool
 )
RETURNS SETOF record LANGUAGE plpgsql STRICT
AS $$
declare
  me pgautofailover.node;
begin
  select * into me from pgautofailover.node n where n.nodeid = get_other_nodes.nodeid;
  if not found then
    raise exception undefined_object
      using message = format('node %s is not registered', get_other_nodes.nodeid);
  end if;
  return query
    select n.nodeid, n.nodename, n.nodehost, n.nodeport, n.reportedlsn,
           n.reportedstate in ('single', 'wait_primary', 'primary',
                               'join_primary', 'apply_settings')
      from pgautofailover.node n
     where n.formationid = me.formationid
       and n.groupid = me.groupid
       and n.nodeid <> me.nodeid
       and n.goalstate <> 'dropped'
  order by n.nodeid;
end
$$;

COMMENT ON FUNCTION pgautofailover.get_other_nodes(bigint)
        IS 'get the other nodes in a group';

GRANT EXECUTE ON FUNCTION pgautofailover.get_other_nodes(bigint)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.get_other_nodes
 (
    IN nodeid           bigint,
    IN current_state    pgautofailover.replication_state,
   OUT node_id          bigint,
   OUT node_name        text,
   OUT node_host        text,
   OUT node_port        int,
   OUT node_lsn         pg_lsn,
   OUT node_is_primary  bool
 )
RETURNS SETOF record LANGUAGE SQL STRICT
AS $$
   select o.node_id, o.node_name, o.node_host, o.node_port, o.node_lsn,
          o.node_is_primary
     from pgautofailover.get_other_nodes(get_other_nodes.nodeid) o
     join pgautofailover.node n on n.nodeid = o.node_id
    where n.goalstate = get_other_nodes.current_state
 order by o.node_id;
$$;

COMMENT ON FUNCTION pgautofailover.get_other_nodes
                    (bigint,pgautofailover.replication_state)
        IS 'get the other nodes in a group, filtering on current_state';

GRANT EXECUTE ON FUNCTION pgautofailover.get_other_nodes
                          (bigint,pgautofailover.replication_state)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.get_coordinator
 (
    IN formation_id  text default 'default',
   OUT node_host     text,
   OUT node_port     int
 )
RETURNS SETOF record LANGUAGE SQL STRICT
AS $$
  select nodehost, nodeport
    from pgautofailover.node
         join pgautofailover.formation using(formationid)
   where formationid = formation_id
     and groupid = 0
     and goalstate in ('single', 'wait_primary', 'primary')
     and reportedstate in ('single', 'wait_primary', 'primary');
$$;

GRANT EXECUTE ON FUNCTION pgautofailover.get_coordinator(text)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.get_most_advanced_standby
 (
    IN formationid       text default 'default',
    IN groupid           int default 0,
   OUT node_id           bigint,
   OUT node_name         text,
   OUT node_host         text,
   OUT node_port         int,
   OUT node_lsn          pg_lsn,
   OUT node_is_primary   bool
 )
RETURNS SETOF record LANGUAGE SQL STRICT
AS $$
   select nodeid, nodename, nodehost, nodeport, reportedlsn, false
     from pgautofailover.node
    where formationid = $1
      and groupid = $2
      and reportedstate = 'report_lsn'
 order by reportedlsn desc, health desc
    limit 1;
$$;

GRANT EXECUTE ON FUNCTION pgautofailover.get_most_advanced_standby(text,int)
   TO autoctl_node;

-- Operator functions

CREATE FUNCTION pgautofailover.remove_node
 (
   node_id bigint,
   force   bool default 'false'
 )
RETURNS bool LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_remove_node_by_nodeid';

COMMENT ON FUNCTION pgautofailover.remove_node(bigint,bool)
        IS 'remove a node from the monitor';

GRANT EXECUTE ON FUNCTION pgautofailover.remove_node(bigint,bool)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.remove_node
 (
   node_host text,
   node_port int default 5432,
   force     bool default 'false'
 )
RETURNS bool LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_remove_node_by_host';

COMMENT ON FUNCTION pgautofailover.remove_node(text,int,bool)
        IS 'remove a node from the monitor';

GRANT EXECUTE ON FUNCTION pgautofailover.remove_node(text,int,bool)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.perform_failover
 (
  formation_id text default 'default',
  group_id     int  default 0
 )
RETURNS void LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_perform_failover';

COMMENT ON FUNCTION pgautofailover.perform_failover(text,int)
        IS 'manually failover from the primary to the secondary';

GRANT EXECUTE ON FUNCTION pgautofailover.perform_failover(text,int)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.perform_promotion
 (
  formation_id text,
  node_name    text
 )
RETURNS bool LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_perform_promotion';

COMMENT ON FUNCTION pgautofailover.perform_promotion(text,text)
        IS 'manually failover from the primary to the given node';

GRANT EXECUTE ON FUNCTION pgautofailover.perform_promotion(text,text)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.start_maintenance(node_id bigint)
RETURNS bool LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_start_maintenance';

COMMENT ON FUNCTION pgautofailover.start_maintenance(bigint)
        IS 'set a node in maintenance state';

GRANT EXECUTE ON FUNCTION pgautofailover.start_maintenance(bigint)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.stop_maintenance(node_id bigint)
RETURNS bool LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_stop_maintenance';

COMMENT ON FUNCTION pgautofailover.stop_maintenance(bigint)
        IS 'set a node out of maintenance state';

GRANT EXECUTE ON FUNCTION pgautofailover.stop_maintenance(bigint)
   TO autoctl_node;

-- Events and state

CREATE FUNCTION pgautofailover.last_events
 (
  count int default 10
 )
RETURNS SETOF pgautofailover.event LANGUAGE SQL STRICT
AS $$
with last_events as
(
  select eventid, eventtime, formationid,
         nodeid, groupid, nodename, nodehost, nodeport,
         reportedstate, goalstate,
         reportedrepstate, reportedtli, reportedlsn,
         candidatepriority, replicationquorum, description
    from pgautofailover.event
order by eventid desc
   limit count
)
select * from last_events order by eventtime, eventid;
$$;

GRANT EXECUTE ON FUNCTION pgautofailover.last_events(int) TO autoctl_node;

CREATE FUNCTION pgautofailover.last_events
 (
  formation_id text default 'default',
  count        int  default 10
 )
RETURNS SETOF pgautofailover.event LANGUAGE SQL STRICT
AS $$
with last_events as
(
    select eventid, eventtime, formationid,
           nodeid, groupid, nodename, nodehost, nodeport,
           reportedstate, goalstate,
           reportedrepstate, reportedtli, reportedlsn,
           candidatepriority, replicationquorum, description
      from pgautofailover.event
     where formationid = formation_id
  order by eventid desc
     limit count
)
select * from last_events order by eventtime, eventid;
$$;

GRANT EXECUTE ON FUNCTION pgautofailover.last_events(text,int)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.last_events
 (
  formation_id text,
  group_id     int,
  count        int  default 10
 )
RETURNS SETOF pgautofailover.event LANGUAGE SQL STRICT
AS $$
with last_events as
(
    select eventid, eventtime, formationid,
           nodeid, groupid, nodename, nodehost, nodeport,
           reportedstate, goalstate,
           reportedrepstate, reportedtli, reportedlsn,
           candidatepriority, replicationquorum, description
      from pgautofailover.event
     where formationid = formation_id
       and groupid = group_id
  order by eventid desc
     limit count
)
select * from last_events order by eventtime, eventid;
$$;

GRANT EXECUTE ON FUNCTION pgautofailover.last_events(text,int,int)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.current_state
 (
    IN formation_id         text default 'default',
   OUT formation_kind       text,
   OUT nodename             text,
   OUT nodehost             text,
   OUT nodeport             int,
   OUT group_id             int,
   OUT node_id              bigint,
   OUT current_group_state  pgautofailover.replication_state,
   OUT assigned_group_state pgautofailover.replication_state,
   OUT candidate_priority   int,
   OUT replication_quorum   bool,
   OUT reported_tli         int,
   OUT reported_lsn         pg_lsn,
   OUT health               integer,
   OUT nodecluster          text
 )
RETURNS SETOF record LANGUAGE SQL STRICT
AS $$
   select kind, nodename, nodehost, nodeport, groupid, nodeid,
          reportedstate, goalstate,
          candidatepriority, replicationquorum,
          reportedtli, reportedlsn, health, nodecluster
     from pgautofailover.node
     join pgautofailover.formation using(formationid)
    where formationid = formation_id
 order by groupid, nodeid;
$$;

GRANT EXECUTE ON FUNCTION pgautofailover.current_state(text)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.current_state
 (
    IN formation_id         text,
    IN group_id             int,
   OUT formation_kind       text,
   OUT nodename             text,
   OUT nodehost             text,
   OUT nodeport             int,
   OUT group_id             int,
   OUT node_id              bigint,
   OUT current_group_state  pgautofailover.replication_state,
   OUT assigned_group_state pgautofailover.replication_state,
   OUT candidate_priority   int,
   OUT replication_quorum   bool,
   OUT reported_tli         int,
   OUT reported_lsn         pg_lsn,
   OUT health               integer,
   OUT nodecluster          text
 )
RETURNS SETOF record LANGUAGE SQL STRICT
AS $$
   select kind, nodename, nodehost, nodeport, groupid, nodeid,
          reportedstate, goalstate,
          candidatepriority, replicationquorum,
          reportedtli, reportedlsn, health, nodecluster
     from pgautofailover.node
     join pgautofailover.formation using(formationid)
    where formationid = $1
      and groupid = $2
 order by groupid, nodeid;
$$;

GRANT EXECUTE ON FUNCTION pgautofailover.current_state(text, int)
   TO autoctl_node;

-- Ours: hosts are listed by nodeid (upstream left the order to the scan).
CREATE FUNCTION pgautofailover.formation_uri
 (
    IN formation_id text DEFAULT 'default',
    IN cluster_name text DEFAULT 'default',
    IN sslmode      text DEFAULT 'prefer',
    IN sslrootcert  text DEFAULT '',
    IN sslcrl       text DEFAULT ''
 )
RETURNS text LANGUAGE SQL STRICT
AS $$
    select case
           when string_agg(format('%s:%s', nodehost, nodeport), ',') is not null
           then format(
               'postgres://%s/%s?%ssslmode=%s%s%s',
               string_agg(format('%s:%s', nodehost, nodeport), ',' order by nodeid),
               -- as we join formation on node we get the same dbname for all
               -- entries, pick one.
               min(dbname),
               case when cluster_name = 'default'
                    then 'target_session_attrs=read-write&'
                    else ''
                end,
               min(sslmode),
               case when min(sslrootcert) = ''
                    then ''
                    else format('&sslrootcert=%s', sslrootcert)
                end,
               case when min(sslcrl) = ''
                    then ''
                    else format('&sslcrl=%s', sslcrl)
                end
           )
           end as uri
      from pgautofailover.node as node
      join pgautofailover.formation using(formationid)
     where formationid = formation_id
       and groupid = 0
       and nodecluster = cluster_name;
$$;

CREATE FUNCTION pgautofailover.set_node_candidate_priority
 (
    IN formation_id       text,
    IN node_name          text,
    IN candidate_priority int
 )
RETURNS bool LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_set_node_candidate_priority';

GRANT EXECUTE ON FUNCTION
      pgautofailover.set_node_candidate_priority(text, text, int)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.set_node_replication_quorum
 (
    IN formation_id       text,
    IN node_name          text,
    IN replication_quorum bool
 )
RETURNS bool LANGUAGE C STRICT SECURITY DEFINER
AS 'MODULE_PATHNAME', 'pgaf_set_node_replication_quorum';

GRANT EXECUTE ON FUNCTION
      pgautofailover.set_node_replication_quorum(text, text, bool)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.synchronous_standby_names
 (
    IN formation_id text default 'default',
    IN group_id     int default 0
 )
RETURNS text LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'pgaf_synchronous_standby_names';

GRANT EXECUTE ON FUNCTION
      pgautofailover.synchronous_standby_names(text, int)
   TO autoctl_node;

CREATE FUNCTION pgautofailover.formation_settings
 (
    IN formation_id text default 'default',
   OUT context      text,
   OUT group_id     int,
   OUT node_id      bigint,
   OUT nodename     text,
   OUT setting      text,
   OUT value        text
 )
RETURNS SETOF record LANGUAGE plpgsql STRICT
AS $$
declare
    groupid int;
begin
    -- the formation's own setting first
    return query
         select 'formation', NULL::int, NULL::bigint, formationid,
                'number_sync_standbys', number_sync_standbys::text
           from pgautofailover.formation
          where formation.formationid = formation_settings.formation_id;

    -- then synchronous_standby_names of the primary of each group
    for groupid in
         select distinct node.groupid
           from pgautofailover.node
          where node.formationid = formation_settings.formation_id
       order by node.groupid
    loop
        return query
         select 'primary', groupid, nodes.node_id, nodes.node_name,
                'synchronous_standby_names',
                format('''%s''',
                  pgautofailover.synchronous_standby_names(
                    formation_settings.formation_id, groupid))
           from pgautofailover.get_nodes(formation_settings.formation_id,
                                         groupid) as nodes
          where node_is_primary;
    end loop;

    -- then the replication settings of every node
    return query
         select 'node', node.groupid, node.nodeid, node.nodename,
                'replication quorum', node.replicationquorum::text
           from pgautofailover.node as node
          where node.formationid = formation_settings.formation_id
       order by node.nodeid;

    return query
         select 'node', node.groupid, node.nodeid, node.nodename,
                'candidate priority', node.candidatepriority::text
           from pgautofailover.node as node
          where node.formationid = formation_settings.formation_id
       order by node.nodeid;
end;
$$;

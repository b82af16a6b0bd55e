package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"hasvc/internal/sqlite"
)

// The catalog's relations as tables, for queries the session does not
// recognise by their text (GUI tools, ORMs, pgcli browse with joins of
// pg_class, pg_attribute, pg_namespace and pg_type, and with
// information_schema). catalogViewQuery runs such a query on an in-memory
// SQLite database that holds these tables, filled from the session's
// schema, and the functions catalog queries call. The tables have
// PostgreSQL 15's columns (the ones clients read; an unknown column is an
// error naming it) and rows for what a tenant sees: the public schema's
// tables, views, indexes and columns, the types hasvc sends, one role and
// the databases the token covers.

// Namespace and role oids, as in PostgreSQL.
const (
	oidPgCatalog   = 11
	oidPublic      = 2200
	oidInfoSchema  = 13000
	oidRole        = 10
	oidBtree       = 403
	oidHeap        = 2
	oidClassRel    = 1259 // pg_class, as a classoid
	oidConstraints = 2606 // pg_constraint, as a classoid
)

const catalogSchema = `
CREATE TABLE information_schema_tables (table_catalog TEXT, table_schema TEXT, table_name TEXT, table_type TEXT,
	self_referencing_column_name TEXT, reference_generation TEXT, user_defined_type_catalog TEXT,
	user_defined_type_schema TEXT, user_defined_type_name TEXT, is_insertable_into TEXT, is_typed TEXT, commit_action TEXT);
CREATE TABLE information_schema_columns (table_catalog TEXT, table_schema TEXT, table_name TEXT, column_name TEXT,
	ordinal_position INTEGER, column_default TEXT, is_nullable TEXT, data_type TEXT, character_maximum_length INTEGER,
	numeric_precision INTEGER, numeric_scale INTEGER, udt_catalog TEXT, udt_schema TEXT, udt_name TEXT,
	is_identity TEXT, is_generated TEXT, is_updatable TEXT);
CREATE TABLE information_schema_schemata (catalog_name TEXT, schema_name TEXT, schema_owner TEXT,
	default_character_set_catalog TEXT, default_character_set_schema TEXT, default_character_set_name TEXT, sql_path TEXT);
CREATE TABLE information_schema_views (table_catalog TEXT, table_schema TEXT, table_name TEXT, view_definition TEXT,
	check_option TEXT, is_updatable TEXT, is_insertable_into TEXT, is_trigger_updatable TEXT,
	is_trigger_deletable TEXT, is_trigger_insertable_into TEXT);
CREATE TABLE pg_tables (schemaname TEXT, tablename TEXT, tableowner TEXT, tablespace TEXT,
	hasindexes BOOLEAN, hasrules BOOLEAN, hastriggers BOOLEAN, rowsecurity BOOLEAN);
CREATE TABLE pg_views (schemaname TEXT, viewname TEXT, viewowner TEXT, definition TEXT);
CREATE TABLE pg_indexes (schemaname TEXT, tablename TEXT, indexname TEXT, tablespace TEXT, indexdef TEXT);
CREATE TABLE pg_namespace (oid INTEGER, nspname TEXT, nspowner INTEGER, nspacl TEXT);
CREATE TABLE pg_class (oid INTEGER, relname TEXT, relnamespace INTEGER, reltype INTEGER, reloftype INTEGER,
	relowner INTEGER, relam INTEGER, relfilenode INTEGER, reltablespace INTEGER, relpages INTEGER, reltuples REAL,
	relallvisible INTEGER, reltoastrelid INTEGER, relhasindex BOOLEAN, relisshared BOOLEAN, relpersistence TEXT,
	relkind TEXT, relnatts INTEGER, relchecks INTEGER, relhasrules BOOLEAN, relhastriggers BOOLEAN,
	relhassubclass BOOLEAN, relrowsecurity BOOLEAN, relforcerowsecurity BOOLEAN, relispopulated BOOLEAN,
	relreplident TEXT, relispartition BOOLEAN, relrewrite INTEGER, relfrozenxid INTEGER, relminmxid INTEGER,
	relacl TEXT, reloptions TEXT, relpartbound TEXT);
CREATE TABLE pg_attribute (attrelid INTEGER, attname TEXT, atttypid INTEGER, attstattarget INTEGER, attlen INTEGER,
	attnum INTEGER, attndims INTEGER, attcacheoff INTEGER, atttypmod INTEGER, attbyval BOOLEAN, attalign TEXT,
	attstorage TEXT, attcompression TEXT, attnotnull BOOLEAN, atthasdef BOOLEAN, atthasmissing BOOLEAN,
	attidentity TEXT, attgenerated TEXT, attisdropped BOOLEAN, attislocal BOOLEAN, attinhcount INTEGER,
	attcollation INTEGER, attacl TEXT, attoptions TEXT, attfdwoptions TEXT, attmissingval TEXT);
CREATE TABLE pg_attrdef (oid INTEGER, adrelid INTEGER, adnum INTEGER, adbin TEXT);
CREATE TABLE pg_index (indexrelid INTEGER, indrelid INTEGER, indnatts INTEGER, indnkeyatts INTEGER,
	indisunique BOOLEAN, indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN, indisexclusion BOOLEAN,
	indimmediate BOOLEAN, indisclustered BOOLEAN, indisvalid BOOLEAN, indcheckxmin BOOLEAN, indisready BOOLEAN,
	indislive BOOLEAN, indisreplident BOOLEAN, indkey TEXT, indcollation TEXT, indclass TEXT, indoption TEXT,
	indexprs TEXT, indpred TEXT);
CREATE TABLE pg_constraint (oid INTEGER, conname TEXT, connamespace INTEGER, contype TEXT, condeferrable BOOLEAN,
	condeferred BOOLEAN, convalidated BOOLEAN, conrelid INTEGER, contypid INTEGER, conindid INTEGER,
	conparentid INTEGER, confrelid INTEGER, confupdtype TEXT, confdeltype TEXT, confmatchtype TEXT,
	conislocal BOOLEAN, coninhcount INTEGER, connoinherit BOOLEAN, conkey TEXT, confkey TEXT, conpfeqop TEXT,
	conppeqop TEXT, conffeqop TEXT, confdelsetcols TEXT, conexclop TEXT, conbin TEXT, consrc TEXT);
CREATE TABLE pg_type (oid INTEGER, typname TEXT, typnamespace INTEGER, typowner INTEGER, typlen INTEGER,
	typbyval BOOLEAN, typtype TEXT, typcategory TEXT, typispreferred BOOLEAN, typisdefined BOOLEAN, typdelim TEXT,
	typrelid INTEGER, typsubscript TEXT, typelem INTEGER, typarray INTEGER, typinput TEXT, typoutput TEXT,
	typreceive TEXT, typsend TEXT, typmodin TEXT, typmodout TEXT, typanalyze TEXT, typalign TEXT, typstorage TEXT,
	typnotnull BOOLEAN, typbasetype INTEGER, typtypmod INTEGER, typndims INTEGER, typcollation INTEGER,
	typdefaultbin TEXT, typdefault TEXT, typacl TEXT);
CREATE TABLE pg_database (oid INTEGER, datname TEXT, datdba INTEGER, encoding INTEGER, datlocprovider TEXT,
	datistemplate BOOLEAN, datallowconn BOOLEAN, datconnlimit INTEGER, datfrozenxid INTEGER, datminmxid INTEGER,
	dattablespace INTEGER, datcollate TEXT, datctype TEXT, daticulocale TEXT, datcollversion TEXT, datacl TEXT);
CREATE TABLE pg_roles (oid INTEGER, rolname TEXT, rolsuper BOOLEAN, rolinherit BOOLEAN, rolcreaterole BOOLEAN,
	rolcreatedb BOOLEAN, rolcanlogin BOOLEAN, rolreplication BOOLEAN, rolconnlimit INTEGER, rolpassword TEXT,
	rolvaliduntil TEXT, rolbypassrls BOOLEAN, rolconfig TEXT);
CREATE TABLE pg_user (usename TEXT, usesysid INTEGER, usecreatedb BOOLEAN, usesuper BOOLEAN, userepl BOOLEAN,
	usebypassrls BOOLEAN, passwd TEXT, valuntil TEXT, useconfig TEXT);
CREATE TABLE pg_am (oid INTEGER, amname TEXT, amhandler TEXT, amtype TEXT);
CREATE TABLE pg_description (objoid INTEGER, classoid INTEGER, objsubid INTEGER, description TEXT);
CREATE TABLE pg_inherits (inhrelid INTEGER, inhparent INTEGER, inhseqno INTEGER, inhdetachpending BOOLEAN);
CREATE TABLE pg_proc (oid INTEGER, proname TEXT, pronamespace INTEGER, proowner INTEGER, prolang INTEGER,
	procost REAL, prorows REAL, provariadic INTEGER, prosupport TEXT, prokind TEXT, prosecdef BOOLEAN,
	proleakproof BOOLEAN, proisstrict BOOLEAN, proretset BOOLEAN, provolatile TEXT, proparallel TEXT,
	pronargs INTEGER, pronargdefaults INTEGER, prorettype INTEGER, proargtypes TEXT, proallargtypes TEXT,
	proargmodes TEXT, proargnames TEXT, proargdefaults TEXT, protrftypes TEXT, prosrc TEXT, probin TEXT,
	prosqlbody TEXT, proconfig TEXT, proacl TEXT);
CREATE TABLE pg_trigger (oid INTEGER, tgrelid INTEGER, tgparentid INTEGER, tgname TEXT, tgfoid INTEGER,
	tgtype INTEGER, tgenabled TEXT, tgisinternal BOOLEAN, tgconstrrelid INTEGER, tgconstrindid INTEGER,
	tgconstraint INTEGER, tgdeferrable BOOLEAN, tginitdeferred BOOLEAN, tgnargs INTEGER, tgattr TEXT,
	tgargs BLOB, tgqual TEXT, tgoldtable TEXT, tgnewtable TEXT);
CREATE TABLE pg_extension (oid INTEGER, extname TEXT, extowner INTEGER, extnamespace INTEGER,
	extrelocatable BOOLEAN, extversion TEXT, extconfig TEXT, extcondition TEXT);
CREATE TABLE pg_enum (oid INTEGER, enumtypid INTEGER, enumsortorder REAL, enumlabel TEXT);
CREATE TABLE pg_collation (oid INTEGER, collname TEXT, collnamespace INTEGER, collowner INTEGER,
	collprovider TEXT, collisdeterministic BOOLEAN, collencoding INTEGER, collcollate TEXT, collctype TEXT,
	colliculocale TEXT, collversion TEXT);
CREATE TABLE pg_sequence (seqrelid INTEGER, seqtypid INTEGER, seqstart INTEGER, seqincrement INTEGER,
	seqmax INTEGER, seqmin INTEGER, seqcache INTEGER, seqcycle BOOLEAN);
CREATE TABLE pg_matviews (schemaname TEXT, matviewname TEXT, matviewowner TEXT, tablespace TEXT,
	hasindexes BOOLEAN, ispopulated BOOLEAN, definition TEXT);
CREATE TABLE pg_tablespace (oid INTEGER, spcname TEXT, spcowner INTEGER, spcacl TEXT, spcoptions TEXT);
CREATE TABLE pg_policy (oid INTEGER, polname TEXT, polrelid INTEGER, polcmd TEXT, polpermissive BOOLEAN,
	polroles TEXT, polqual TEXT, polwithcheck TEXT);
CREATE TABLE pg_foreign_table (ftrelid INTEGER, ftserver INTEGER, ftoptions TEXT);
CREATE TABLE pg_partitioned_table (partrelid INTEGER, partstrat TEXT, partnatts INTEGER, partdefid INTEGER,
	partattrs TEXT, partclass TEXT, partcollation TEXT, partexprs TEXT);
CREATE TABLE pg_statistic_ext (oid INTEGER, stxrelid INTEGER, stxname TEXT, stxnamespace INTEGER,
	stxowner INTEGER, stxstattarget INTEGER, stxkeys TEXT, stxkind TEXT, stxexprs TEXT);
CREATE TABLE pg_publication (oid INTEGER, pubname TEXT, pubowner INTEGER, puballtables BOOLEAN,
	pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN);
CREATE TABLE pg_depend (classid INTEGER, objid INTEGER, objsubid INTEGER, refclassid INTEGER, refobjid INTEGER,
	refobjsubid INTEGER, deptype TEXT);
CREATE TABLE pg_range (rngtypid INTEGER, rngsubtype INTEGER, rngmultitypid INTEGER, rngcollation INTEGER,
	rngsubopc INTEGER, rngcanonical TEXT, rngsubdiff TEXT);
CREATE TABLE pg_settings (name TEXT, setting TEXT, unit TEXT, category TEXT, short_desc TEXT, extra_desc TEXT,
	context TEXT, vartype TEXT, source TEXT, min_val TEXT, max_val TEXT, enumvals TEXT, boot_val TEXT,
	reset_val TEXT, sourcefile TEXT, sourceline INTEGER, pending_restart BOOLEAN);
CREATE TABLE pg_stat_activity (datid INTEGER, datname TEXT, pid INTEGER, leader_pid INTEGER, usesysid INTEGER,
	usename TEXT, application_name TEXT, client_addr TEXT, client_hostname TEXT, client_port INTEGER,
	backend_start TEXT, xact_start TEXT, query_start TEXT, state_change TEXT, wait_event_type TEXT,
	wait_event TEXT, state TEXT, backend_xid INTEGER, backend_xmin INTEGER, query_id INTEGER, query TEXT,
	backend_type TEXT)`

// catalogRelations are the relations a query may name (bare or qualified
// by its schema), with their tables in the in-memory database.
var catalogRelations = func() map[string]string {
	m := map[string]string{}
	for _, stmt := range strings.Split(catalogSchema, ";") {
		f := strings.Fields(stmt)
		if len(f) < 3 {
			continue
		}
		table := f[2]
		if name, ok := strings.CutPrefix(table, "information_schema_"); ok {
			m["information_schema."+name] = table
			continue
		}
		m[table] = table
		m["pg_catalog."+table] = table
	}
	return m
}()

// pgType is a row of pg_type for a type hasvc sends or declares.
type pgType struct {
	oid      uint32
	name     string // typname
	format   string // format_type's name
	length   int64
	category string
	array    uint32
}

var pgTypes = []pgType{
	{oidBool, "bool", "boolean", 1, "B", 1000},
	{oidBytea, "bytea", "bytea", -1, "U", 1001},
	{oidName, "name", "name", 64, "S", 1003},
	{oidInt8, "int8", "bigint", 8, "N", 1016},
	{oidInt2, "int2", "smallint", 2, "N", 1005},
	{oidInt4, "int4", "integer", 4, "N", 1007},
	{oidText, "text", "text", -1, "S", 1009},
	{oidOID, "oid", "oid", 4, "N", 1028},
	{oidFloat4, "float4", "real", 4, "N", 1021},
	{oidFloat8, "float8", "double precision", 8, "N", 1022},
	{oidUnknown, "unknown", "unknown", -2, "X", 0},
	{oidBPChar, "bpchar", "character", -1, "S", 1014},
	{oidVarchar, "varchar", "character varying", -1, "S", 1015},
	{oidNumeric, "numeric", "numeric", -1, "N", 1231},
	{oidUUID, "uuid", "uuid", 16, "U", 2951},
}

// formatType is PostgreSQL's format_type(oid, typmod).
func formatType(oid any, typmod any) any {
	o, ok := oid.(int64)
	if !ok {
		return nil
	}
	mod, _ := typmod.(int64)
	for _, t := range pgTypes {
		if int64(t.oid) != o {
			continue
		}
		if (t.oid == oidBPChar || t.oid == oidVarchar) && mod >= 4 {
			return fmt.Sprintf("%s(%d)", t.format, mod-4)
		}
		return t.format
	}
	return "???"
}

// typeOfDecl returns the oid and typmod a declared column type reads as.
func typeOfDecl(decl string) (uint32, int64) {
	oid := declaredOID(decl)
	if oid == 0 {
		return oidText, -1 // no declared type: values are sent as they are
	}
	return oid, -1
}

// typeLength is pg_type.typlen of oid.
func typeLength(oid uint32) int64 {
	for _, t := range pgTypes {
		if t.oid == oid {
			return t.length
		}
	}
	return -1
}

// catalogState is what the catalog's functions look up: definitions
// (pg_get_indexdef, pg_get_constraintdef, pg_get_viewdef) and relation
// names by oid, for regclass.
type catalogState struct {
	regexps  map[string]*regexp.Regexp
	defs     map[int64]string
	relNames map[int64]string
	relOIDs  map[string]int64
	user     string
}

// fillCatalog fills the in-memory catalog tables from the session's
// schema.
func (ss *session) fillCatalog(ctx context.Context, mem *sqlite.Conn) (*catalogState, error) {
	st := &catalogState{defs: map[int64]string{}, relNames: map[int64]string{}, relOIDs: map[string]int64{}, user: ss.user()}
	var stmts []sqlite.Statement
	add := func(sql string, params ...any) {
		for i, p := range params {
			if oid, ok := p.(uint32); ok {
				params[i] = int64(oid)
			}
		}
		stmts = append(stmts, sqlite.Statement{SQL: sql, Params: params})
	}
	user := ss.user()

	add(`INSERT INTO pg_namespace VALUES (?, 'pg_catalog', ?, NULL), (?, 'public', ?, NULL), (?, 'information_schema', ?, NULL)`,
		oidPgCatalog, oidRole, oidPublic, oidRole, oidInfoSchema, oidRole)
	add(`INSERT INTO information_schema_schemata VALUES (?, 'public', ?, NULL, NULL, NULL, NULL)`, ss.db, user)
	add(`INSERT INTO pg_roles VALUES (?, ?, 0, 1, 0, 0, 1, 0, -1, '********', NULL, 0, NULL)`, oidRole, user)
	add(`INSERT INTO pg_user VALUES (?, ?, 0, 0, 0, 0, '********', NULL, NULL)`, user, oidRole)
	add(`INSERT INTO pg_am VALUES (?, 'heap', 'heap_tableam_handler', 't'), (?, 'btree', 'bthandler', 'i')`, oidHeap, oidBtree)
	for _, t := range pgTypes {
		add(`INSERT INTO pg_type (oid, typname, typnamespace, typowner, typlen, typbyval, typtype, typcategory,
			typispreferred, typisdefined, typdelim, typrelid, typelem, typarray, typalign, typstorage, typnotnull,
			typbasetype, typtypmod, typndims, typcollation)
			VALUES (?, ?, ?, ?, ?, ?, 'b', ?, 0, 1, ',', 0, 0, ?, 'i', 'p', 0, 0, -1, 0, 0)`,
			t.oid, t.name, oidPgCatalog, oidRole, t.length, boolInt(t.length > 0 && t.length <= 8), t.category, t.array)
	}
	if cfgs, err := ss.srv.DB.List(ctx); err == nil {
		for i, c := range cfgs {
			if ss.principal.Covers(c.Name) {
				add(`INSERT INTO pg_database VALUES (?, ?, ?, 6, 'c', 0, 1, -1, 0, 1, 1663, 'C', 'C', NULL, NULL, NULL)`,
					oidBase+100000+i, c.Name, oidRole)
			}
		}
	} else if ss.db != catalogDB {
		return nil, err
	}
	for _, name := range knownSettings() {
		add(`INSERT INTO pg_settings (name, setting, context, vartype, source, pending_restart) VALUES (?, ?, 'user', 'string', 'session', 0)`,
			name, ss.setting(name))
	}

	objs, err := ss.schemaObjects(ctx)
	if err != nil {
		return nil, err
	}
	oidOf := st.relOIDs
	indexed, triggered := map[string]bool{}, map[string]bool{}
	for _, o := range objs {
		oidOf[strings.ToLower(o.name)] = o.oid
		switch o.kind {
		case "index":
			indexed[o.table] = true
		case "trigger":
			triggered[o.table] = true
		}
	}
	nextOID := int64(oidBase + 200000) // constraints and defaults
	for _, o := range objs {
		switch o.kind {
		case "table", "view":
		case "trigger":
			add(`INSERT INTO pg_trigger (oid, tgrelid, tgparentid, tgname, tgfoid, tgtype, tgenabled, tgisinternal, tgnargs)
				VALUES (?, ?, 0, ?, 0, 0, 'O', 0, 0)`, o.oid, oidOf[strings.ToLower(o.table)], o.name)
			continue
		default:
			continue
		}
		isView := o.kind == "view"
		st.relNames[o.oid] = o.name
		typ, insertable, relkind, am := "BASE TABLE", "YES", "r", oidHeap
		if isView {
			typ, insertable, relkind, am = "VIEW", "NO", "v", 0
		}
		add(`INSERT INTO information_schema_tables VALUES (?, 'public', ?, ?, NULL, NULL, NULL, NULL, NULL, ?, 'NO', NULL)`,
			ss.db, o.name, typ, insertable)
		if isView {
			def := viewBody(o.sql)
			st.defs[o.oid] = def
			add(`INSERT INTO pg_views VALUES ('public', ?, ?, ?)`, o.name, user, def)
			add(`INSERT INTO information_schema_views VALUES (?, 'public', ?, ?, 'NONE', 'NO', 'NO', 'NO', 'NO', 'NO')`, ss.db, o.name, def)
		} else {
			add(`INSERT INTO pg_tables VALUES ('public', ?, ?, NULL, ?, 0, ?, 0)`,
				o.name, user, boolInt(indexed[o.name]), boolInt(triggered[o.name]))
		}
		info, err := ss.inspect(ctx, "PRAGMA table_info("+sqlite.QuoteString(o.name)+")")
		if err != nil && isView {
			// SQLite keeps a view whose body no longer prepares (a table
			// dropped under it, a function it lacks); PostgreSQL could not
			// have one. It is listed without columns rather than failing
			// every catalog query of the database.
			info, err = &sqlite.Result{}, nil
		}
		if err != nil {
			return nil, err
		}
		add(`INSERT INTO pg_class (oid, relname, relnamespace, reltype, reloftype, relowner, relam, relfilenode,
			reltablespace, relpages, reltuples, relallvisible, reltoastrelid, relhasindex, relisshared, relpersistence,
			relkind, relnatts, relchecks, relhasrules, relhastriggers, relhassubclass, relrowsecurity,
			relforcerowsecurity, relispopulated, relreplident, relispartition, relrewrite, relfrozenxid, relminmxid)
			VALUES (?, ?, ?, 0, 0, ?, ?, ?, 0, 0, -1, 0, 0, ?, 0, 'p', ?, ?, 0, ?, ?, 0, 0, 0, 1, 'd', 0, 0, 0, 1)`,
			o.oid, o.name, oidPublic, oidRole, am, o.oid, boolInt(indexed[o.name]), relkind, len(info.Rows),
			boolInt(isView), boolInt(triggered[o.name]))
		for _, r := range info.Rows {
			pos, _ := r[0].(int64)
			decl, _ := r[2].(string)
			notNull, _ := r[3].(int64)
			pk, _ := r[5].(int64)
			oid, typmod := typeOfDecl(decl)
			nullable := "YES"
			if notNull != 0 || pk != 0 && strings.EqualFold(decl, "INTEGER") {
				nullable = "NO"
			}
			var dflt any
			if r[4] != nil {
				dflt = fmt.Sprint(r[4])
				add(`INSERT INTO pg_attrdef VALUES (?, ?, ?, ?)`, nextOID, o.oid, pos+1, dflt)
				nextOID++
			}
			names, ok := pgTypeNames[oid]
			if !ok {
				names = [2]string{"text", "text"}
			}
			add(`INSERT INTO information_schema_columns VALUES (?, 'public', ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, 'pg_catalog', ?, 'NO', 'NEVER', ?)`,
				ss.db, o.name, r[1], pos+1, dflt, nullable, names[0], ss.db, names[1], insertable)
			add(`INSERT INTO pg_attribute (attrelid, attname, atttypid, attstattarget, attlen, attnum, attndims,
				attcacheoff, atttypmod, attbyval, attalign, attstorage, attcompression, attnotnull, atthasdef,
				atthasmissing, attidentity, attgenerated, attisdropped, attislocal, attinhcount, attcollation)
				VALUES (?, ?, ?, -1, ?, ?, 0, -1, ?, ?, 'i', 'p', '', ?, ?, 0, '', '', 0, 1, 0, 0)`,
				o.oid, r[1], oid, typeLength(oid), pos+1, typmod, boolInt(typeLength(oid) > 0), boolInt(nullable == "NO"), boolInt(dflt != nil))
		}
		if isView {
			continue
		}
		if err := ss.fillIndexes(ctx, st, &o, info, &nextOID, add); err != nil {
			return nil, err
		}
	}
	if _, err := mem.Run(ctx, stmts, nil); err != nil {
		return nil, err
	}
	return st, nil
}

// fillIndexes adds a table's indexes, primary key, unique and foreign key
// constraints to the catalog tables.
func (ss *session) fillIndexes(ctx context.Context, st *catalogState, o *schemaObject, info *sqlite.Result,
	nextOID *int64, add func(string, ...any)) error {
	oidOf := st.relOIDs
	k := columnNumbers(info)
	keys := func(cols []string) string { return k(cols, " ") }
	idx, err := ss.indexes(ctx, o)
	if err != nil {
		return err
	}
	for _, ix := range idx {
		ioid, ok := oidOf[strings.ToLower(ix.name)]
		if !ok { // an implicit index (INTEGER PRIMARY KEY, or SQLite's autoindex)
			ioid = *nextOID
			*nextOID++
		}
		create := "CREATE INDEX "
		if ix.unique {
			create = "CREATE UNIQUE INDEX "
		}
		def := create + ix.name + " ON public." + o.name + " USING btree (" + strings.Join(ix.columns, ", ") + ")"
		add(`INSERT INTO pg_class (oid, relname, relnamespace, reltype, reloftype, relowner, relam, relfilenode,
			reltablespace, relpages, reltuples, relallvisible, reltoastrelid, relhasindex, relisshared, relpersistence,
			relkind, relnatts, relchecks, relhasrules, relhastriggers, relhassubclass, relrowsecurity,
			relforcerowsecurity, relispopulated, relreplident, relispartition, relrewrite, relfrozenxid, relminmxid)
			VALUES (?, ?, ?, 0, 0, ?, ?, ?, 0, 0, -1, 0, 0, 0, 0, 'p', 'i', ?, 0, 0, 0, 0, 0, 0, 1, 'n', 0, 0, 0, 0)`,
			ioid, ix.name, oidPublic, oidRole, oidBtree, ioid, len(ix.columns))
		st.relNames[ioid] = ix.name
		st.defs[ioid] = def
		indkey := keys(ix.columns)
		add(`INSERT INTO pg_index VALUES (?, ?, ?, ?, ?, 0, ?, 0, 1, 0, 1, 0, 1, 1, 0, ?, '', '', '', NULL, NULL)`,
			ioid, o.oid, len(ix.columns), len(ix.columns), boolInt(ix.unique), boolInt(ix.primary), indkey)
		add(`INSERT INTO pg_indexes VALUES ('public', ?, ?, NULL, ?)`, o.name, ix.name, def)
		if ix.cons {
			contype, def := "u", "UNIQUE ("+strings.Join(ix.columns, ", ")+")"
			if ix.primary {
				contype, def = "p", "PRIMARY KEY ("+strings.Join(ix.columns, ", ")+")"
			}
			add(`INSERT INTO pg_constraint (oid, conname, connamespace, contype, condeferrable, condeferred, convalidated,
				conrelid, contypid, conindid, conparentid, confrelid, conislocal, coninhcount, connoinherit, conkey)
				VALUES (?, ?, ?, ?, 0, 0, 1, ?, 0, ?, 0, 0, 1, 0, 1, ?)`,
				*nextOID, ix.name, oidPublic, contype, o.oid, ioid, "{"+strings.ReplaceAll(indkey, " ", ",")+"}")
			st.defs[*nextOID] = def
			*nextOID++
		}
	}
	fks, err := ss.inspect(ctx, "PRAGMA foreign_key_list("+sqlite.QuoteString(o.name)+")")
	if err != nil {
		return err
	}
	// (id, seq, table, from, to, on_update, on_delete, match), one row per
	// column of each key.
	type fk struct {
		table           string
		from, to        []string
		onUpdate, onDel string
	}
	var list []*fk
	byID := map[int64]*fk{}
	for _, r := range fks.Rows {
		id, _ := r[0].(int64)
		f := byID[id]
		if f == nil {
			f = &fk{table: fmt.Sprint(r[2]), onUpdate: fmt.Sprint(r[5]), onDel: fmt.Sprint(r[6])}
			byID[id] = f
			list = append(list, f)
		}
		f.from = append(f.from, fmt.Sprint(r[3]))
		if r[4] != nil {
			f.to = append(f.to, fmt.Sprint(r[4]))
		}
	}
	action := map[string]string{"NO ACTION": "a", "RESTRICT": "r", "CASCADE": "c", "SET NULL": "n", "SET DEFAULT": "d"}
	for _, f := range list {
		name := o.name + "_" + strings.Join(f.from, "_") + "_fkey"
		def := "FOREIGN KEY (" + strings.Join(f.from, ", ") + ") REFERENCES " + f.table
		var confkey any
		if len(f.to) > 0 {
			def += "(" + strings.Join(f.to, ", ") + ")"
			if ref, err := ss.inspect(ctx, "PRAGMA table_info("+sqlite.QuoteString(f.table)+")"); err == nil {
				confkey = "{" + columnNumbers(ref)(f.to, ",") + "}"
			}
		}
		if f.onUpdate != "NO ACTION" {
			def += " ON UPDATE " + f.onUpdate
		}
		if f.onDel != "NO ACTION" {
			def += " ON DELETE " + f.onDel
		}
		add(`INSERT INTO pg_constraint (oid, conname, connamespace, contype, condeferrable, condeferred, convalidated,
			conrelid, contypid, conindid, conparentid, confrelid, confupdtype, confdeltype, confmatchtype, conislocal,
			coninhcount, connoinherit, conkey, confkey)
			VALUES (?, ?, ?, 'f', 0, 0, 1, ?, 0, 0, 0, ?, ?, ?, 's', 1, 0, 1, ?, ?)`,
			*nextOID, name, oidPublic, o.oid, oidOf[strings.ToLower(f.table)], action[f.onUpdate], action[f.onDel],
			"{"+k(f.from, ",")+"}", confkey)
		st.defs[*nextOID] = def
		*nextOID++
	}
	return nil
}

// columnNumbers returns a function that lists the positions (attnum) of
// named columns of a table, given the table's PRAGMA table_info.
func columnNumbers(info *sqlite.Result) func(cols []string, sep string) string {
	position := map[string]int64{}
	for _, r := range info.Rows {
		pos, _ := r[0].(int64)
		position[strings.ToLower(fmt.Sprint(r[1]))] = pos + 1
	}
	return func(cols []string, sep string) string {
		var b strings.Builder
		for i, c := range cols {
			if i > 0 {
				b.WriteString(sep)
			}
			fmt.Fprint(&b, position[strings.ToLower(c)])
		}
		return b.String()
	}
}

// viewBody is the query of a CREATE VIEW statement.
func viewBody(sql string) string {
	if i := strings.Index(strings.ToUpper(sql), " AS "); i >= 0 {
		return strings.TrimSpace(sql[i+4:])
	}
	return sql
}

// register makes the functions catalog queries call available on mem.
func (st *catalogState) register(mem *sqlite.Conn) error {
	for name, f := range st.functions() {
		if err := mem.RegisterFunc(name, f, true); err != nil {
			return fmt.Errorf("catalog function %s: %w", name, err)
		}
	}
	return nil
}

// catalogFunctions are the names of the functions only the catalog has: a
// query that calls one is a catalog query.
var catalogFunctions = func() map[string]bool {
	names := map[string]bool{}
	for name := range (&catalogState{}).functions() {
		names[name] = true
	}
	return names
}()

// functions are the catalog's functions. Functions about privileges
// answer yes (a session may read everything in its database),
// descriptions are NULL (SQLite has no comments), and sizes NULL (not
// tracked per table).
func (st *catalogState) functions() map[string]any {
	oidArg := func(v any) (int64, bool) {
		switch v := v.(type) {
		case int64:
			return v, true
		case string:
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
		return 0, false
	}
	def := func(args ...any) any {
		if len(args) == 0 {
			return nil
		}
		if name, ok := args[0].(string); ok { // pg_get_viewdef('name')
			if oid, ok := st.relOIDs[strings.ToLower(relName(name))]; ok {
				args[0] = oid
			}
		}
		if oid, ok := oidArg(args[0]); ok {
			if d, ok := st.defs[oid]; ok {
				return d
			}
		}
		return nil
	}
	yes := func(...any) any { return int64(1) }
	null := func(...any) any { return nil }
	funcs := map[string]any{
		"format_type":               formatType,
		"pg_get_expr":               func(args ...any) any { return firstArg(args) },
		"pg_get_indexdef":           def,
		"pg_get_constraintdef":      def,
		"pg_get_viewdef":            def,
		"pg_get_triggerdef":         null,
		"pg_get_functiondef":        null,
		"pg_get_function_arguments": null,
		"pg_get_function_result":    null,
		"pg_get_serial_sequence":    null,
		"pg_get_partkeydef":         null,
		"pg_get_statisticsobjdef":   null,
		"pg_get_userbyid":           func(any) any { return st.user },
		"pg_encoding_to_char":       func(any) any { return "UTF8" },
		"pg_table_is_visible":       yes,
		"pg_type_is_visible":        yes,
		"pg_function_is_visible":    yes,
		"has_table_privilege":       yes,
		"has_schema_privilege":      yes,
		"has_database_privilege":    yes,
		"has_column_privilege":      yes,
		"has_any_column_privilege":  yes,
		"has_sequence_privilege":    yes,
		"has_function_privilege":    yes,
		"pg_has_role":               yes,
		"obj_description":           null,
		"col_description":           null,
		"shobj_description":         null,
		"pg_relation_size":          null,
		"pg_total_relation_size":    null,
		"pg_table_size":             null,
		"pg_indexes_size":           null,
		"pg_database_size":          null,
		"pg_size_pretty":            func(args ...any) any { return firstArg(args) },
		"pg_is_in_recovery":         func() any { return int64(0) },
		"pg_postmaster_start_time":  null,
		"array_to_string":           func(args ...any) any { return arrayToString(args) },
		"current_schemas":           func(any) any { return "{pg_catalog,public}" },
		"hasvc_array":               arrayJSON,
		"regexp":                    st.regexp,
		regPrefix + "class": func(v any) any {
			if name, ok := v.(string); ok {
				if oid, ok := st.relOIDs[strings.ToLower(relName(name))]; ok {
					return oid
				}
				return nil
			}
			if oid, ok := oidArg(v); ok {
				if name, ok := st.relNames[oid]; ok {
					return name
				}
				if oid == 0 {
					return "-"
				}
				return strconv.FormatInt(oid, 10)
			}
			return nil
		},
		regPrefix + "type": func(v any) any {
			if name, ok := v.(string); ok {
				for _, t := range pgTypes {
					if strings.EqualFold(name, t.name) || strings.EqualFold(name, t.format) {
						return int64(t.oid)
					}
				}
				return nil
			}
			if oid, _ := oidArg(v); oid == 0 {
				return "-"
			}
			return formatType(v, int64(-1))
		},
		regPrefix + "namespace": func(v any) any {
			names := map[int64]string{oidPgCatalog: "pg_catalog", oidPublic: "public", oidInfoSchema: "information_schema"}
			if name, ok := v.(string); ok {
				for oid, n := range names {
					if n == name {
						return oid
					}
				}
				return nil
			}
			if oid, ok := oidArg(v); ok {
				return names[oid]
			}
			return nil
		},
		regPrefix + "role": func(v any) any {
			if _, ok := v.(string); ok {
				return int64(oidRole)
			}
			return st.user
		},
		regPrefix + "proc":      func(v any) any { return v },
		regPrefix + "procedure": func(v any) any { return v },
	}
	return funcs
}

// regexp is x REGEXP re (PostgreSQL's x ~ re): Go's regular expressions
// take PostgreSQL's common syntax, and psql-style patterns (^(users)$).
func (st *catalogState) regexp(re, x any) (any, error) {
	pattern, ok := re.(string)
	s, ok2 := x.(string)
	if !ok || !ok2 {
		return nil, nil
	}
	r, ok := st.regexps[pattern]
	if !ok {
		var err error
		if r, err = regexp.Compile(pattern); err != nil {
			return nil, err
		}
		if st.regexps == nil {
			st.regexps = map[string]*regexp.Regexp{}
		}
		st.regexps[pattern] = r
	}
	return boolInt(r.MatchString(s)), nil
}

// arrayJSON is hasvc_array(v): an array as JSON, for json_each. v is
// PostgreSQL's text form of an array ('{r,p,"a b"}', a parameter bound
// to a list), JSON already (ARRAY[...], rewritten), or one value.
func arrayJSON(v any) any {
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal([]any{v})
		return string(b)
	}
	if strings.HasPrefix(s, "[") && json.Valid([]byte(s)) {
		return s
	}
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		b, _ := json.Marshal([]string{s})
		return string(b)
	}
	elems := []any{}
	body := s[1 : len(s)-1]
	for i := 0; i < len(body); {
		var e strings.Builder
		quoted := body[i] == '"'
		if quoted {
			i++
			for i < len(body) && body[i] != '"' {
				if body[i] == '\\' && i+1 < len(body) {
					i++
				}
				e.WriteByte(body[i])
				i++
			}
			i++ // the closing quote
		} else {
			for i < len(body) && body[i] != ',' {
				e.WriteByte(body[i])
				i++
			}
		}
		if !quoted && strings.EqualFold(e.String(), "NULL") {
			elems = append(elems, nil)
		} else {
			elems = append(elems, e.String())
		}
		i++ // the comma
	}
	b, _ := json.Marshal(elems)
	return string(b)
}

func firstArg(args []any) any {
	if len(args) == 0 {
		return nil
	}
	return args[0]
}

// arrayToString is array_to_string(array, sep) for arrays as the catalog
// tables hold them ('{1,2}').
func arrayToString(args []any) any {
	if len(args) < 2 {
		return nil
	}
	a, ok := args[0].(string)
	sep, _ := args[1].(string)
	if !ok {
		return nil
	}
	a = strings.TrimSuffix(strings.TrimPrefix(a, "{"), "}")
	if a == "" {
		return ""
	}
	return strings.Join(strings.Split(a, ","), sep)
}

// relName is a relation's name from regclass input ('public.users',
// '"Users"').
func relName(s string) string {
	s = strings.TrimPrefix(s, "public.")
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

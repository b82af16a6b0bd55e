package pg

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// serverVersion is the PostgreSQL version hasvc reports: clients pick
// their catalog queries by it, and hasvc answers psql 15's.
const serverVersion = "15.0"

// reportedSettings are sent as ParameterStatus at startup and when SET
// changes them, as PostgreSQL does.
var reportedSettings = []string{
	"server_version", "server_encoding", "client_encoding", "DateStyle",
	"integer_datetimes", "standard_conforming_strings", "TimeZone",
	"application_name", "is_superuser", "session_authorization",
	"IntervalStyle", "in_hot_standby", "default_transaction_read_only",
}

// defaultSettings are the values SHOW and current_setting() give for
// settings nobody SET.
var defaultSettings = map[string]string{
	"server_version":                      serverVersion,
	"server_version_num":                  "150000",
	"server_encoding":                     "UTF8",
	"client_encoding":                     "UTF8",
	"datestyle":                           "ISO, MDY",
	"integer_datetimes":                   "on",
	"standard_conforming_strings":         "on",
	"timezone":                            "UTC",
	"application_name":                    "",
	"is_superuser":                        "off",
	"intervalstyle":                       "postgres",
	"in_hot_standby":                      "off",
	"search_path":                         `"$user", public`,
	"transaction_isolation":               "serializable",
	"default_transaction_isolation":       "serializable",
	"transaction_read_only":               "off",
	"default_transaction_read_only":       "off",
	"statement_timeout":                   "0",
	"lock_timeout":                        "0",
	"idle_in_transaction_session_timeout": "0",
	"extra_float_digits":                  "1",
	"max_identifier_length":               "63",
	"bytea_output":                        "hex",
	"escape_string_warning":               "on",
	"lc_messages":                         "C",
	"lc_monetary":                         "C",
	"lc_numeric":                          "C",
	"lc_time":                             "C",
	"lc_collate":                          "C",
	"lc_ctype":                            "C",
	"default_text_search_config":          "pg_catalog.simple",
	"block_size":                          "8192",
	"max_index_keys":                      "32",
	"synchronous_commit":                  "on",
	"client_min_messages":                 "notice",
	"max_connections":                     "",
	"session_authorization":               "",
}

func knownSettings() []string {
	names := make([]string, 0, len(defaultSettings))
	for n := range defaultSettings {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// lookupSetting returns a setting's value: SET, else the startup message's
// (application_name, DateStyle...), else hasvc's default.
func (ss *session) lookupSetting(name string) (string, bool) {
	key := strings.ToLower(name)
	if v, ok := ss.settings[key]; ok {
		return v, true
	}
	switch key {
	case settingSequence:
		return strconv.FormatUint(ss.lastSeq, 10), true
	case "session_authorization":
		return ss.user(), true
	case "transaction_read_only":
		if ss.readOnlyNow() {
			return "on", true
		}
		return "off", true
	case "default_transaction_read_only":
		if ss.readOnly {
			return "on", true
		}
	case "max_connections":
		return strconv.Itoa(ss.srv.maxConns()), true
	case "server_encoding", "server_version", "server_version_num", "integer_datetimes", "is_superuser":
		return defaultSettings[key], true
	}
	for k, v := range ss.startup {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	v, ok := defaultSettings[key]
	return v, ok
}

// set answers SET name {TO|=} value.
func (ss *session) set(sql string) (*outcome, error) {
	if toks := words(sql)[1:]; len(toks) > 0 {
		switch ro, given := accessMode(toks); {
		case given && toks[0].is("TRANSACTION"):
			return ss.setTxReadOnly(ro)
		case given && toks[0].is("SESSION") && len(toks) > 1 && toks[1].is("CHARACTERISTICS"):
			sql = "SET default_transaction_read_only = " + map[bool]string{true: "on", false: "off"}[ro]
		}
	}
	name, value, err := parseSet(sql)
	if err != nil {
		return nil, err
	}
	out := &outcome{tag: "SET"}
	if name == "" { // SET TRANSACTION ..., SET SESSION CHARACTERISTICS ...
		return out, nil
	}
	if name == "client_encoding" && value != "" && !isUTF8(value) {
		return nil, errorf(stateInvalidParamValue, "invalid value for parameter \"client_encoding\": %q: hasvc speaks UTF8 only", value)
	}
	if name == "transaction_isolation" || name == "default_transaction_isolation" {
		return out, nil
	}
	if name == "transaction_read_only" {
		return ss.setTxReadOnly(isOn(value))
	}
	if name == settingSequence {
		return nil, errorf(stateCantChange, "parameter %q cannot be changed: it reports the session's last write", name)
	}
	if err := checkSetting(name, value); err != nil {
		return nil, err
	}
	if value == "" {
		delete(ss.settings, name)
	} else {
		ss.settings[name] = value
	}
	ss.settingsChanged()
	for _, r := range reportedSettings {
		if strings.EqualFold(r, name) {
			ss.be.Send(&pgproto3.ParameterStatus{Name: r, Value: ss.setting(r)})
		}
	}
	return out, nil
}

// checkSetting refuses a value the session could not use for the settings
// it reads (settingsChanged), whether SET or given at connection.
func checkSetting(name, value string) error {
	switch name {
	case settingMinSeq:
		return checkMinSeq(value)
	case "statement_timeout":
		_, err := parseTimeout(value)
		return err
	}
	return nil
}

// parseTimeout reads statement_timeout: milliseconds, or a number with a
// unit (ms, s, min); "" and 0 mean none.
func parseTimeout(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	unit := time.Millisecond
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"ms", time.Millisecond}, {"min", time.Minute}, {"s", time.Second}, {"h", time.Hour}} {
		if strings.HasSuffix(v, u.suffix) {
			v, unit = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.d
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errorf(stateInvalidParamValue, "invalid value for parameter \"statement_timeout\": %q", v)
	}
	return time.Duration(n) * unit, nil
}

func isUTF8(v string) bool {
	switch strings.ToUpper(strings.ReplaceAll(v, "-", "")) {
	case "UTF8", "UNICODE":
		return true
	}
	return false
}

// parseSet reads SET [SESSION|LOCAL] name {TO|=} value[, value...]; value
// "" means DEFAULT.
func parseSet(sql string) (name, value string, err error) {
	toks := words(sql)[1:] // after SET
	if len(toks) > 0 && (toks[0].is("SESSION") || toks[0].is("LOCAL")) {
		if len(toks) > 1 && toks[1].is("CHARACTERISTICS") {
			return "", "", nil
		}
		toks = toks[1:]
	}
	if len(toks) == 0 {
		return "", "", errorf(stateSyntax, "syntax error at end of input")
	}
	if toks[0].is("TRANSACTION") {
		return "", "", nil
	}
	if toks[0].is("TIME") && len(toks) > 1 && toks[1].is("ZONE") {
		name, toks = "timezone", toks[2:]
	} else if toks[0].is("NAMES") {
		name, toks = "client_encoding", toks[1:]
	} else {
		// name, possibly qualified (my.setting)
		name = strings.ToLower(strings.Trim(toks[0].text, `"`))
		toks = toks[1:]
		for len(toks) > 1 && toks[0].text == "." {
			name += "." + strings.ToLower(toks[1].text)
			toks = toks[2:]
		}
		if len(toks) == 0 || !(toks[0].is("TO") || toks[0].text == "=") {
			return "", "", errorf(stateSyntax, "syntax error in SET: expected TO or = after %q", name)
		}
		toks = toks[1:]
	}
	if len(toks) == 0 {
		return "", "", errorf(stateSyntax, "syntax error at end of input")
	}
	if len(toks) == 1 && toks[0].is("DEFAULT") {
		return name, "", nil
	}
	var vals []string
	for _, t := range toks {
		switch {
		case t.text == ",":
		case t.kind == tkString && t.text[0] == '\'':
			vals = append(vals, strings.ReplaceAll(t.text[1:len(t.text)-1], "''", "'"))
		default:
			vals = append(vals, strings.Trim(t.text, `"`))
		}
	}
	return name, strings.Join(vals, ", "), nil
}

// show answers SHOW name and SHOW ALL.
func (ss *session) show(sql string) (*outcome, error) {
	kw := keywords(sql, 4)
	if len(kw) < 2 {
		return nil, errorf(stateSyntax, "syntax error at end of input")
	}
	name := strings.ToLower(kw[1])
	if len(kw) > 3 && kw[2] == "." { // a qualified name: hasvc.sequence
		name += "." + strings.ToLower(kw[3])
	}
	switch {
	case name == "all":
		out := &outcome{cols: []column{{"name", oidText}, {"setting", oidText}, {"description", oidText}}}
		for _, n := range knownSettings() {
			out.rows = append(out.rows, []any{n, ss.setting(n), ""})
		}
		out.tag = "SHOW"
		return out, nil
	case name == "time" && len(kw) > 2 && kw[2] == "ZONE":
		name = "timezone"
	case name == "transaction" && len(kw) > 3 && kw[2] == "ISOLATION":
		name = "transaction_isolation"
	}
	v, ok := ss.lookupSetting(name)
	if !ok {
		return nil, errorf(stateUndefinedParam, "unrecognized configuration parameter %q", name)
	}
	return &outcome{cols: []column{{name, oidText}}, rows: [][]any{{v}}, tag: "SHOW"}, nil
}

func (ss *session) reset(sql string) (*outcome, error) {
	kw := keywords(sql, 2)
	if len(kw) < 2 {
		return nil, errorf(stateSyntax, "syntax error at end of input")
	}
	if kw[1] == "ALL" {
		clear(ss.settings)
	} else {
		delete(ss.settings, strings.ToLower(kw[1]))
	}
	ss.settingsChanged()
	return &outcome{tag: "RESET"}, nil
}

// settingsChanged refreshes what the session keeps of its settings for
// every statement (statement_timeout, hasvc.min_seq), after the startup
// options, SET, RESET or DISCARD.
func (ss *session) settingsChanged() {
	ss.timeout, _ = parseTimeout(ss.setting("statement_timeout"))
	ss.minSeqSet = 0
	if v := strings.TrimSpace(ss.setting(settingMinSeq)); v != "" {
		ss.minSeqSet, _ = strconv.ParseUint(v, 10, 64)
	}
}

// builtin implements substitutions: the values of the functions clients
// call when they connect.
func (ss *session) builtin(name string) (string, bool) {
	switch name {
	case "version()":
		return fmt.Sprintf("PostgreSQL %s (hasvc, SQLite %s)", serverVersion, ss.srv.Version), true
	case "current_database()", "current_catalog":
		return ss.db, true
	case "current_schema()", "current_schema":
		return "public", true
	case "current_user", "session_user", "current_user()", "session_user()":
		// Not "user": a column named user is common in SQLite.
		return ss.user(), true
	case "pg_backend_pid()":
		return strconv.FormatUint(uint64(ss.pid), 10), true
	}
	return "", false
}

func (ss *session) user() string {
	if u := ss.startup["user"]; u != "" {
		return u
	}
	return ss.principal.Subject
}

// setting returns a setting's value, "" if there is none.
func (ss *session) setting(name string) string {
	v, _ := ss.lookupSetting(name)
	return v
}

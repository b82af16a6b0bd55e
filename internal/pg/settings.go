package pg

import (
	"slices"
	"strconv"
	"strings"
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
	case "session_authorization":
		return ss.user(), true
	case "transaction_read_only", "default_transaction_read_only":
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

package pg

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"hasvc/internal/engine"
	"hasvc/internal/tenant"
)

// Reading your own writes through another node, as HTTP's sequence and
// min_seq allow: every committed write reports its stream sequence as the
// ParameterStatus hasvc.sequence (and SHOW hasvc.sequence gives the
// session's last), and SET hasvc.min_seq = N (or the startup option
// "-c hasvc.min_seq=N") makes the session's statements wait until this
// node has applied sequence N.

// Setting names.
const (
	settingSequence = "hasvc.sequence"
	settingMinSeq   = "hasvc.min_seq"
)

// minSeqWait bounds how long a statement waits for hasvc.min_seq.
const minSeqWait = 5 * time.Second

// execOptions are the options of a statement run outside a transaction
// block.
func (ss *session) execOptions(readOnly bool) engine.ExecOptions {
	return engine.ExecOptions{ReadOnly: readOnly, MinSeq: ss.minSeq(), Wait: minSeqWait}
}

// minSeq is the session's hasvc.min_seq (0: none), as settingsChanged
// last read it.
func (ss *session) minSeq() uint64 { return ss.minSeqSet }

// checkMinSeq validates a value SET for hasvc.min_seq.
func checkMinSeq(v string) error {
	if _, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err != nil && v != "" {
		return errorf(stateInvalidParamValue, "invalid value for parameter %q: %q: want a stream sequence", settingMinSeq, v)
	}
	return nil
}

// waitMinSeq waits, before a transaction block takes its snapshot, until
// this node has applied the session's hasvc.min_seq.
func (ss *session) waitMinSeq(ctx context.Context, db *engine.DB) error {
	seq := ss.minSeq()
	if seq == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, minSeqWait)
	defer cancel()
	if err := db.WaitApplied(ctx, seq); err != nil {
		return tenant.Wrap(tenant.ETIMEOUT, err, "this node has not applied sequence "+strconv.FormatUint(seq, 10)+" (hasvc.min_seq) within 5s")
	}
	return nil
}

// committed records the stream sequence of a write the session
// committed, and reports it.
func (ss *session) committed(seq uint64) {
	if seq == 0 {
		return
	}
	ss.lastSeq = seq
	ss.send(&pgproto3.ParameterStatus{Name: settingSequence, Value: strconv.FormatUint(seq, 10)})
}

// startupOptions reads the settings of the startup parameter "options"
// ("-c name=value" or "--name=value", separated by spaces), as PostgreSQL
// does, into the session's settings.
func (ss *session) startupOptions() error {
	f := strings.Fields(ss.startup["options"])
	for i := 0; i < len(f); i++ {
		kv := ""
		switch {
		case f[i] == "-c" && i+1 < len(f):
			kv = f[i+1]
			i++
		case strings.HasPrefix(f[i], "-c"):
			kv = f[i][2:]
		case strings.HasPrefix(f[i], "--"):
			kv = f[i][2:]
		default:
			continue
		}
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.ReplaceAll(name, "-", "_"))
		if err := checkSetting(name, value); err != nil {
			return err
		}
		ss.settings[name] = value
	}
	return nil
}

package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// CreateFromFile creates database cfg from an uploaded SQLite file read
// from r. The file goes to disk as it arrives (at most the database's
// size limit), is checked (a whole SQLite file; no table of hasvc's, no
// virtual table), and only then is the database created and the file's
// content imported through its stream (Import), so every node gets it. A
// failing import deletes the new database again.
func (e *Engine) CreateFromFile(ctx context.Context, cfg tenant.Config, r io.Reader) (tenant.Config, error) {
	if err := cfg.Normalize(); err != nil {
		return cfg, err
	}
	if _, err := e.Registry.Get(ctx, cfg.Name); err == nil {
		return cfg, tenant.Errorf(tenant.ECONFLICT, "database %q already exists", cfg.Name)
	}
	tmpDir := filepath.Join(e.DataDir, "tmp")
	if e.Memory {
		tmpDir = os.TempDir()
	}
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return cfg, err
	}
	f, err := os.CreateTemp(tmpDir, cfg.Name+"-upload-*.db")
	if err != nil {
		return cfg, err
	}
	path := f.Name()
	defer os.Remove(path)
	limit := e.sizeLimit(cfg)
	n, err := io.Copy(f, io.LimitReader(r, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return cfg, tenant.Wrap(tenant.EINVALID, err, "reading the uploaded file: "+err.Error())
	}
	if n > limit {
		return cfg, tenant.Errorf(tenant.ETOOLARGE, "the file is larger than the database's size limit (%d bytes)", limit)
	}
	if err := checkUpload(path); err != nil {
		return cfg, err
	}
	cfg, err = e.Create(ctx, cfg)
	if err != nil {
		return cfg, err
	}
	if err := e.Import(ctx, cfg.Name, path); err != nil {
		if derr := e.Delete(context.Background(), cfg.Name); derr != nil {
			e.Logger.Error("delete a database whose upload failed", "db", cfg.Name, "err", derr)
		}
		return cfg, err
	}
	return cfg, nil
}

// checkUpload checks that path is a SQLite file hasvc can take.
func checkUpload(path string) error {
	c, err := sqlite.Open("file:"+path+"?mode=ro", sqlite.Options{ReadOnly: true})
	if err != nil {
		// The error names the node's temporary file: not for the client.
		return tenant.Wrap(tenant.EINVALID, err, "not a SQLite file")
	}
	defer c.Close()
	var problems []string
	err = c.Internal(func() error {
		res, err := c.QueryText("PRAGMA integrity_check")
		if err != nil {
			return err
		}
		if res != "ok" {
			problems = append(problems, "integrity check: "+res)
			return nil
		}
		return c.Query("SELECT type, name, coalesce(sql, '') FROM sqlite_schema", nil, func(s *sqlite.Stmt) error {
			typ, _ := s.Column(0).(string)
			name, _ := s.Column(1).(string)
			sql, _ := s.Column(2).(string)
			switch {
			case strings.EqualFold(name, "_hasvc_versions"):
				// A backup of an eventual-mode database: the rows'
				// versions, which the import leaves out.
			case strings.HasPrefix(strings.ToLower(name), "_hasvc"):
				problems = append(problems, fmt.Sprintf("%s %q: names starting with _hasvc are hasvc's own", typ, name))
			case strings.HasPrefix(strings.ToUpper(strings.TrimSpace(sql)), "CREATE VIRTUAL"):
				problems = append(problems, fmt.Sprintf("table %q is a virtual table; hasvc does not replicate those", name))
			}
			return nil
		})
	})
	if err != nil {
		return tenant.Wrap(tenant.EINVALID, err, "not a usable SQLite file: "+err.Error())
	}
	if len(problems) > 0 {
		return tenant.Errorf(tenant.EINVALID, "the file cannot be restored: %s", strings.Join(problems, "; "))
	}
	return nil
}

package tenant

import "time"

// Replication modes, chosen per database at creation.
const (
	// ModeStrong serializes writes cluster-wide through the stream with
	// JetStream's expected-last-sequence check.
	ModeStrong = "strong"
	// ModeEventual is the ancestor's leaderless last-writer-wins.
	ModeEventual = "eventual"
)

// Config is a database's cluster-wide configuration, stored in its registry
// entry.
type Config struct {
	Name      string    `json:"name"`
	Mode      string    `json:"mode"`
	Replicas  int       `json:"replicas"`
	CreatedAt time.Time `json:"created_at"`
}

// Normalize fills defaults and validates c.
func (c *Config) Normalize() error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	switch c.Mode {
	case "":
		c.Mode = ModeStrong
	case ModeStrong, ModeEventual:
	default:
		return Errorf(EINVALID, "invalid mode %q: want %q or %q", c.Mode, ModeStrong, ModeEventual)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return Errorf(EINVALID, "invalid replicas %d: want 1 to 5", c.Replicas)
	}
	return nil
}

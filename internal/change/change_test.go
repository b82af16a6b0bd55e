package change

import (
	"encoding/json"
	"math"
	"testing"
)

// TestMessageJSON checks that the hand-written encoder writes what
// encoding/json would, and that it decodes back to the same values.
func TestMessageJSON(t *testing.T) {
	m := Message{Node: "n\"1", Timestamp: 42, LWW: true, Changes: []Change{
		{Database: "main", Operation: OpSQL, SQL: "CREATE TABLE \"t\" (x)\n"},
		{Database: "main", Table: "t", Columns: []string{"a", "b"}, Operation: OpUpdate, OldRowID: RowID(0), NewRowID: RowID(-5),
			OldValues: Values{int64(1), 2.5}, NewValues: Values{"é\u2028", []byte{1}}},
		{Database: "main", Table: "k", Columns: []string{"a"}, Operation: OpDelete, OldValues: Values{nil}, Base: &Version{Timestamp: 7, Node: "b\u00e9"}},
	}}
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.AppendJSON(nil); string(got) != string(want) {
		t.Fatalf("AppendJSON:\n got  %s\n want %s", got, want)
	}
	var back Message
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(want) {
		t.Fatalf("round trip:\n got  %s\n want %s", again, want)
	}
}

// TestAppendValue pins the value encoding users and change-feed readers
// depend on: storage class kept, integers exact, reals always marked.
func TestAppendValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"null", nil, `null`},
		{"zero", int64(0), `0`},
		{"max int64", int64(math.MaxInt64), `9223372036854775807`},
		{"min int64", int64(math.MinInt64), `-9223372036854775808`},
		{"whole real", 1.0, `1.0`},
		{"fraction", 0.1, `0.1`},
		{"big real", 1e300, `1e+300`},
		{"negative zero", math.Copysign(0, -1), `-0.0`},
		{"+inf", math.Inf(1), `1e999`},
		{"-inf", math.Inf(-1), `-1e999`},
		{"text", "héllo", `"héllo"`},
		{"control chars", "a\x00\n\t\"\\", `"a\u0000\n\t\"\\"`},
		{"line separator", "\u2028\u2029", `"\u2028\u2029"`},
		{"empty text", "", `""`},
		{"blob", []byte{0, 1, 2}, `{"blob":"AAEC"}`},
		{"empty blob", []byte{}, `{"blob":""}`},
		{"bool", true, `1`},
		{"invalid utf-8 text", string([]byte{0xff, 0xfe, 'A'}), `{"text_base64":"//5B"}`},
		{"lone surrogate bytes", "\xed\xa0\x80", `{"text_base64":"7aCA"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(AppendValue(nil, tc.v)); got != tc.want {
				t.Fatalf("AppendValue(%#v) = %s, want %s", tc.v, got, tc.want)
			}
		})
	}
}

// TestValuesRoundTrip decodes what Values encodes and gets the same
// values with the same types.
func TestValuesRoundTrip(t *testing.T) {
	in := Values{nil, int64(-7), int64(math.MaxInt64), 2.0, 0.5, math.Inf(-1), "x\u0001y", []byte{0xff, 0}, []byte{}, "a\xffb"}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Values
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d values, want %d", len(out), len(in))
	}
	for i := range in {
		if s, ok := in[i].(string); ok && out[i] != s {
			t.Errorf("value %d: text %q came back as %q", i, s, out[i])
		}
		if got, want := string(AppendValue(nil, out[i])), string(AppendValue(nil, in[i])); got != want {
			t.Errorf("value %d: got %s (%T), want %s (%T)", i, got, out[i], want, in[i])
		}
	}
}

func TestValueFromJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
	}{
		{"integer overflow", `[9223372036854775808]`},
		{"array value", `[[1]]`},
		{"object without blob", `[{"x": 1}]`},
		{"blob with extra key", `[{"blob": "", "x": 1}]`},
		{"bad base64", `[{"blob": "!!"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vs Values
			if err := json.Unmarshal([]byte(tc.json), &vs); err == nil {
				t.Fatalf("%s decoded to %#v, want an error", tc.json, vs)
			}
		})
	}
}

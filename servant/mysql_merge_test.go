package servant

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestMergeJSON(t *testing.T) {
	for _, tc := range []struct{ stored, incoming, want string }{
		{"", `{"a":1}`, `{"a":1}`},
		{`{"a":1,"b":{"x":1,"y":[1,2]}}`, `{"b":{"y":[3],"z":"<&>"},"c":null}`, `{"a":1,"b":{"x":1,"y":[3],"z":"<&>"},"c":null}`},
		{`{"a":{"b":1}}`, `{"a":5}`, `{"a":5}`},
		{`{"a":5}`, `{"a":{"b":1}}`, `{"a":{"b":1}}`},
	} {
		var in map[string]any
		if err := jsonUnmarshal(tc.incoming, &in); err != nil {
			t.Fatal(err)
		}
		got, err := mergeJSON(tc.stored, in)
		if err != nil || got != tc.want {
			t.Errorf("merge(%s, %s) = %s, %v; want %s", tc.stored, tc.incoming, got, err, tc.want)
		}
	}
	if _, err := mergeJSON(`[1,2]`, map[string]any{"a": 1}); !errors.Is(err, ErrMerge) {
		t.Errorf("stored array: %v", err)
	}
	deep := map[string]any{}
	cur := deep
	for i := 0; i < 40; i++ {
		next := map[string]any{}
		cur["k"] = next
		cur = next
	}
	base := `{"k":` + nest(40) + `}`
	if _, err := mergeJSON(base, deep); !errors.Is(err, ErrMerge) {
		t.Errorf("40 deep: %v, want ErrMerge", err)
	}
}

func nest(n int) string {
	if n == 0 {
		return "{}"
	}
	return `{"k":` + nest(n-1) + `}`
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

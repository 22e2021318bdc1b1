package metrics

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Masked is what a secret is shown as.
const Masked = "***"

// Mask returns v (a config struct, or a pointer to one) as plain JSON-ready
// values keyed by the config file's own key names (the `cf` tags: "password",
// "http_listen_addr"; fields of a tagged struct that have no tag are left
// out: they are not keys), with durations as text ("1.5s") and every non-empty
// string under a key whose name contains "pass" or "secret" (any case) shown
// as Masked: mysql password, mongodb pass, any future *secret* key.
func Mask(v any) any { return mask(reflect.ValueOf(v), "") }

func mask(v reflect.Value, key string) any {
	if !v.IsValid() {
		return nil
	}
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return mask(v.Elem(), key)
	case reflect.Struct:
		return maskStruct(v)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return []any{}
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = mask(v.Index(i), key)
		}
		return out
	case reflect.Map:
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			k := fmt.Sprint(it.Key().Interface())
			out[k] = mask(it.Value(), k)
		}
		return out
	case reflect.String:
		if secret(key) && v.Len() > 0 {
			return Masked
		}
		return v.String()
	case reflect.Func, reflect.Chan:
		return nil
	}
	return v.Interface()
}

func maskStruct(v reflect.Value) map[string]any {
	out := map[string]any{}
	t := v.Type()
	tagged := false // a struct of the config: its untagged fields are no keys (engine.Config.ListenAddr)
	for i := range t.NumField() {
		tagged = tagged || t.Field(i).Tag.Get("cf") != ""
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("cf"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			if tagged && !f.Anonymous {
				continue
			}
			name = f.Name
		}
		val := mask(v.Field(i), name)
		if f.Anonymous && f.Tag.Get("cf") == "" { // embedded: its keys are the parent's
			if m, ok := val.(map[string]any); ok {
				for k, x := range m {
					out[k] = x
				}
				continue
			}
		}
		out[name] = val
	}
	return out
}

func secret(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "pass") || strings.Contains(k, "secret")
}

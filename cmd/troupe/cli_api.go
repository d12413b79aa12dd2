package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/troupe-media/troupe/httpapi/auth"
)

// The API's command-line client: `troupe room`, `participant`, `session`
// and `join` call a server's REST API as an operator would with curl.

const (
	// defaultServerURL is where `troupe serve` listens by default.
	defaultServerURL = "http://127.0.0.1:7880"
	// cliTokenTTL is the lifetime of the admin token minted from the local
	// key for one command.
	cliTokenTTL = 5 * time.Minute
	// cliRequestTimeout bounds one API call.
	cliRequestTimeout = 30 * time.Second
)

// ErrAPI: the server answered a call with an error. *apiCallError carries
// its status and code.
var ErrAPI = errors.New("API error")

// apiCallError is an error answer of the API, as the CLI reports it.
type apiCallError struct {
	status        int
	code, message string
}

func (e *apiCallError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.code, e.message, e.status)
}

func (e *apiCallError) Unwrap() error { return ErrAPI }

// apiFlags are the flags every API command takes: where the server is,
// how to authenticate, and how to print.
type apiFlags struct {
	url, token string
	json       bool
	key        *configFlags // --data-dir, --api-key, --api-secret: the local key
}

func (f *apiFlags) bind(fs *pflag.FlagSet) {
	f.bindConn(fs)
	fs.BoolVar(&f.json, "json", false, "print the API's JSON instead of a table")
}

// bindConn binds the flags that say where the server is and how to
// authenticate, for a command that prints no API answer.
func (f *apiFlags) bindConn(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "url", "", "the server's base URL (env TROUPE_URL; default: where serve listens by TROUPE_HTTP_ADDR or --config, else "+defaultServerURL+")")
	fs.StringVar(&f.token, "token", "", "an admin token (env TROUPE_TOKEN; default: an admin token minted from the local key)")
	f.key = newConfigFlags(fs, "data-dir", "api-key", "api-secret")
}

// client resolves the flags, the environment and the local key into an
// API client. A URL that is not one is a usage error; a token that cannot
// be found or minted, a failure.
func (f *apiFlags) client(cmd *cobra.Command) (*apiClient, error) {
	server, err := f.serverConfig()
	if err != nil {
		return nil, err
	}
	base, from := f.serverURL(cmd, server)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf("%s %q: must be an http:// or https:// URL with a host", from, base)
	}
	token := f.token
	if !cmd.Flags().Changed("token") {
		token = os.Getenv("TROUPE_TOKEN")
	}
	if token == "" {
		if token, err = f.localToken(server.TokenMaxLifetime); err != nil {
			return nil, err
		}
	}
	return &apiClient{
		base: strings.TrimRight(u.String(), "/"), from: from, token: token,
		http: &http.Client{Timeout: cliRequestTimeout},
	}, nil
}

// serverConfig is what the API commands read of the server's own
// configuration besides the key: where it listens (http_addr, and
// tls_cert for its scheme) and its token max lifetime, from the
// environment, else the YAML of --config, as serve reads them. The
// commands have --url rather than serve's flags for these.
func (f *apiFlags) serverConfig() (Config, error) {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	cf := newConfigFlags(fs, "http-addr", "tls-cert", "token-max-lifetime")
	if f.key.fs.Changed(configFlag) {
		if err := fs.Set(configFlag, f.key.file); err != nil {
			return Config{}, err
		}
	}
	return cf.load(os.LookupEnv)
}

// serverURL is the server's base URL and where it came from: --url, else
// TROUPE_URL, else the address serve listens at by its configuration
// (TROUPE_HTTP_ADDR, else http_addr in --config, else the default).
func (f *apiFlags) serverURL(cmd *cobra.Command, server Config) (base, from string) {
	if cmd.Flags().Changed("url") {
		return f.url, "--url"
	}
	if v, ok := lookupEnv(os.LookupEnv, "TROUPE_URL"); ok {
		return v, "TROUPE_URL"
	}
	from = "the default"
	if _, ok := lookupEnv(os.LookupEnv, envName("http-addr")); ok {
		from = envName("http-addr")
	} else if server.HTTPAddr != DefaultConfig().HTTPAddr {
		from = "http_addr of the configuration file"
	}
	return server.scheme() + "://" + dialable(server.HTTPAddr), from
}

// localToken mints a short-lived admin token with the key in the data
// dir, or the one given with --api-key and --api-secret, cut to the
// server's token max lifetime.
func (f *apiFlags) localToken(maxLifetime time.Duration) (string, error) {
	cfg, err := f.key.load(os.LookupEnv)
	if err != nil {
		return "", err
	}
	if err := cfg.validateKey(); err != nil {
		return "", err
	}
	key, ok := cfg.configuredKey()
	if !ok {
		if key, err = loadKey(cfg.DataDir); err != nil {
			return "", fmt.Errorf("no token: pass --token or TROUPE_TOKEN, or run where the server's key is (--data-dir): %w", err)
		}
	}
	cfg.TokenMaxLifetime = maxLifetime
	return auth.Mint(key, auth.AdminClaims(time.Now(), cfg.tokenTTL(cliTokenTTL)))
}

// apiClient calls one server's REST API with one token.
type apiClient struct {
	base, token string
	// from says where base came from (--url, TROUPE_URL...), for the
	// error of a server that cannot be reached.
	from string
	http *http.Client
}

// call sends body (JSON, unless nil) and returns the answer's body. An
// error answer is an *apiCallError; a server that cannot be reached says
// where it was looked for.
func (c *apiClient) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	resp, err := c.do(ctx, c.http, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	return out, nil
}

// download writes the body of GET path to w, however long it takes
// (ctx bounds it). It returns the bytes written.
func (c *apiClient) download(ctx context.Context, path string, w io.Writer) (int64, error) {
	unbounded := *c.http
	unbounded.Timeout = 0
	resp, err := c.do(ctx, &unbounded, http.MethodGet, path, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download %s: %w", path, err)
	}
	return n, nil
}

// do sends the request and returns a successful answer, whose body the
// caller closes; an error answer is an *apiCallError.
func (c *apiClient) do(ctx context.Context, hc *http.Client, method, path string, body any) (*http.Response, error) {
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, in)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("cannot reach the server at %s (the address from %s): nothing listens there; is it running, or is it elsewhere (--url)? %w",
			c.base, c.from, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach the server at %s (the address from %s): %w", c.base, c.from, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(out, &e) != nil || e.Error.Code == "" {
		return nil, &apiCallError{status: resp.StatusCode, code: "http_error", message: strings.TrimSpace(http.StatusText(resp.StatusCode))}
	}
	return nil, &apiCallError{status: resp.StatusCode, code: e.Error.Code, message: e.Error.Message}
}

// output prints what an API command got: the JSON itself with --json,
// else the table t makes of it (nil for an answer with no body).
func output(w io.Writer, asJSON bool, body []byte, t func(v any) table) error {
	if len(body) == 0 || (t == nil && !asJSON) {
		return nil
	}
	if asJSON {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, body, "", "  "); err != nil {
			return fmt.Errorf("the server's answer is not JSON: %w", err)
		}
		pretty.WriteByte('\n')
		_, err := w.Write(pretty.Bytes())
		return err
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %w", err)
	}
	return t(v).write(w)
}

// table is rows of cells under a header, aligned in columns.
type table struct {
	header []string
	rows   [][]string
	footer string // a line after the table, if any
}

func (t table) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t.footer != "" {
		_, err := fmt.Fprintln(w, t.footer)
		return err
	}
	return nil
}

// column is one column of a list's table: its header and how a cell is
// made of an item.
type column struct {
	header string
	cell   func(item map[string]any) string
}

// field is the column of a JSON field, by its path ("config.locked").
func field(header, path string) column {
	return column{header, func(item map[string]any) string { return cellOf(lookup(item, path)) }}
}

// listTable makes a table of the items listed under key, with a footer
// when the page holds fewer than the total. key "" reads a body that is
// the array itself (the live participants).
func listTable(key string, cols ...column) func(v any) table {
	return func(v any) table {
		obj, _ := v.(map[string]any)
		items, _ := obj[key].([]any)
		if key == "" {
			items, _ = v.([]any)
		}
		t := table{}
		for _, c := range cols {
			t.header = append(t.header, c.header)
		}
		for _, it := range items {
			item, _ := it.(map[string]any)
			row := make([]string, len(cols))
			for i, c := range cols {
				row[i] = c.cell(item)
			}
			t.rows = append(t.rows, row)
		}
		if total, ok := obj["total"].(float64); ok && int(total) > len(items) {
			t.footer = fmt.Sprintf("(%d of %d; see --limit and --offset)", len(items), int(total))
		}
		return t
	}
}

// objectTable lists an object's fields, nested ones by their path, one
// per row in name order.
func objectTable(v any) table {
	t := table{header: []string{"FIELD", "VALUE"}}
	flat := map[string]string{}
	flatten("", v, flat)
	names := make([]string, 0, len(flat))
	for n := range flat {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.rows = append(t.rows, []string{n, flat[n]})
	}
	return t
}

func flatten(prefix string, v any, out map[string]string) {
	obj, ok := v.(map[string]any)
	if !ok || len(obj) == 0 {
		out[prefix] = cellOf(v)
		return
	}
	for k, sub := range obj {
		if prefix != "" {
			k = prefix + "." + k
		}
		flatten(k, sub, out)
	}
}

// lookup follows a dotted path into nested objects; nil if it leads
// nowhere.
func lookup(item map[string]any, path string) any {
	var v any = item
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[k]
	}
	return v
}

// cellOf is a JSON value as a table shows it: null as "-", lists as
// their items joined, objects as compact JSON.
func cellOf(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		if v == "" {
			return "-"
		}
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case []any:
		if len(v) == 0 {
			return "-"
		}
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = cellOf(e)
		}
		return strings.Join(parts, ",")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

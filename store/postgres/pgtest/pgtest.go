// Package pgtest starts throwaway PostgreSQL clusters for tests.
//
// A cluster is a real PostgreSQL server (initdb + pg_ctl from the local
// PostgreSQL binaries, preferably Debian's /usr/lib/postgresql/15/bin) in a
// temporary directory, listening on a free TCP port on 127.0.0.1, tuned for
// speed over durability. It trusts every local connection as user postgres.
//
// A package whose tests need PostgreSQL starts one cluster per test binary
// through a Harness in TestMain and gives each test its own database:
//
//	var pg pgtest.Harness
//
//	func TestMain(m *testing.M) { os.Exit(pg.RunMain(m)) }
//
//	func TestSomething(t *testing.T) {
//		url := pg.NewDatabase(t) // postgres://postgres@127.0.0.1:PORT/test_N?sslmode=disable
//		...
//	}
//
// When PostgreSQL cannot be started, RunMain fails the test binary if
// Required reports true (CI=true or FHIR_REQUIRE_POSTGRES=1); otherwise it
// runs the tests anyway and Harness.NewDatabase skips each test that needs
// PostgreSQL, giving the reason.
//
// Start, Cluster.NewDatabase and Cluster.Stop are there for tests that manage
// a cluster themselves.
//
// When run as root (initdb refuses to), the cluster belongs to the postgres
// user and initdb and pg_ctl run through runuser. A test binary killed before
// it could stop its cluster (a -timeout panic, Ctrl-C) leaves the cluster
// behind; the next Start in any test binary stops and removes it.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// dirPrefix names the temporary directories of clusters.
	dirPrefix = "pgtest-"
	// ownerFile, in a cluster's directory, holds the pid of the process that
	// started it, so that a later Start can tell an abandoned cluster.
	ownerFile = "owner.pid"
	// startTimeout bounds pg_ctl start and the wait for the first connection.
	startTimeout = 60 * time.Second
	// startAttempts is how often Start tries a new port when the chosen one
	// was taken between picking it and the server binding it.
	startAttempts = 3
	// logTail is how much of a log or command output goes into an error.
	logTail = 4096
)

// settings are appended to postgresql.conf: durability off, room for
// parallel tests.
const settings = `
# pgtest: a throwaway cluster for tests
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
`

// Required reports whether a missing PostgreSQL must fail the tests instead
// of skipping them: when CI=true or FHIR_REQUIRE_POSTGRES=1.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("FHIR_REQUIRE_POSTGRES") == "1"
}

// Cluster is a running throwaway PostgreSQL server. Its methods may be
// called from several goroutines, except Stop.
type Cluster struct {
	dir     string // temporary directory holding everything below
	dataDir string
	sockDir string
	logFile string
	port    int
	bin     string       // directory with initdb and pg_ctl
	runAs   *user.User   // set when running as root: run the tools as this user
	nextDB  atomic.Int64 // numbers the databases made by NewDatabase
	stopped bool
}

// Start creates a cluster in a new temporary directory, starts it and waits
// until it accepts connections. The caller must Stop it.
func Start() (*Cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	var runAs *user.User
	if os.Geteuid() == 0 {
		runAs, err = user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root, so initdb must run as user postgres: %w", err)
		}
	}
	base := tempBase(runAs)
	reapAbandoned(base)

	dir, err := os.MkdirTemp(base, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: creating temporary directory: %w", err)
	}
	c := &Cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		sockDir: filepath.Join(dir, "sock"),
		logFile: filepath.Join(dir, "server.log"),
		bin:     bin,
		runAs:   runAs,
	}
	if err := c.start(); err != nil {
		c.stopped = true
		if c.running() {
			if stopErr := c.pgCtlStop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("pgtest: removing %s: %w", dir, rmErr))
		}
		return nil, err
	}
	return c, nil
}

// start does the work of Start in c's (existing, empty) directory.
func (c *Cluster) start() error {
	if err := os.WriteFile(filepath.Join(c.dir, ownerFile), []byte(owner(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("pgtest: writing %s: %w", ownerFile, err)
	}
	if err := os.Mkdir(c.sockDir, 0o700); err != nil {
		return fmt.Errorf("pgtest: creating socket directory: %w", err)
	}
	if c.runAs != nil {
		if err := chown(c.runAs, c.dir, c.sockDir); err != nil {
			return err
		}
	}

	out, err := c.run(filepath.Join(c.bin, "initdb"),
		"-D", c.dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	if err != nil {
		return fmt.Errorf("pgtest: initdb in %s: %w\n%s", c.dataDir, err, tail(out))
	}
	conf := settings + "unix_socket_directories = " + quoteConf(c.sockDir) + "\n"
	if err := appendFile(filepath.Join(c.dataDir, "postgresql.conf"), conf); err != nil {
		return fmt.Errorf("pgtest: configuring cluster: %w", err)
	}

	for attempt := 1; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			return err
		}
		// The port goes on the command line rather than into
		// postgresql.conf so that a retry can pick another; each attempt
		// gets a fresh log so that its failure is judged on its own.
		if err := os.Remove(c.logFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pgtest: removing old server log: %w", err)
		}
		out, err = c.run(filepath.Join(c.bin, "pg_ctl"), "start", "-D", c.dataDir, "-l", c.logFile,
			"-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "-o", "-p "+strconv.Itoa(c.port))
		if err == nil {
			break
		}
		log := c.logTail()
		if attempt < startAttempts && strings.Contains(log, "could not bind") {
			continue // someone else took the port; try another
		}
		return fmt.Errorf("pgtest: starting server (pg_ctl start, port %d): %w\n%s\nserver log %s:\n%s",
			c.port, err, tail(out), c.logFile, log)
	}

	if err := c.waitReady(startTimeout); err != nil {
		return fmt.Errorf("%w\nserver log %s:\n%s", err, c.logFile, c.logTail())
	}
	return nil
}

// waitReady waits until the server accepts a connection and a query.
func (c *Cluster) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := ping(ctx, c.URL())
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: waiting for the server on port %d to accept connections: %w", c.port, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ping(ctx context.Context, dbURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// URL is the connection URL of the cluster's default database, postgres.
func (c *Cluster) URL() string { return c.databaseURL("postgres") }

func (c *Cluster) databaseURL(name string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// NewDatabase creates an empty database with a name not used before in
// this cluster and returns its connection URL.
func (c *Cluster) NewDatabase(ctx context.Context) (string, error) {
	name := "test_" + strconv.FormatInt(c.nextDB.Add(1), 10)
	if err := c.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: creating database %s: %w", name, err)
	}
	return c.databaseURL(name), nil
}

// dropDatabase drops the database named in dbURL, closing its connections.
func (c *Cluster) dropDatabase(ctx context.Context, dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("pgtest: dropping database: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if err := c.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: dropping database %s: %w", name, err)
	}
	return nil
}

// exec runs one statement in the default database.
func (c *Cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop stops the server at once (pg_ctl stop -m immediate) and removes its
// directory. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop() error {
	if c == nil || c.stopped {
		return nil
	}
	c.stopped = true
	err := c.pgCtlStop()
	// Remove the directory even if pg_ctl failed: a server that loses its
	// lock file shuts itself down within a minute.
	if rmErr := os.RemoveAll(c.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("pgtest: removing %s: %w", c.dir, rmErr))
	}
	return err
}

func (c *Cluster) pgCtlStop() error {
	out, err := c.run(filepath.Join(c.bin, "pg_ctl"), "stop", "-D", c.dataDir, "-m", "immediate", "-w")
	if err != nil {
		return fmt.Errorf("pgtest: stopping server (pg_ctl stop): %w\n%s\nserver log %s:\n%s",
			err, tail(out), c.logFile, c.logTail())
	}
	return nil
}

// running reports whether a server may be running in c's data directory.
func (c *Cluster) running() bool {
	_, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid"))
	return err == nil
}

// run runs a PostgreSQL tool, as c.runAs when set, in c's directory (the
// tools need a working directory their user can enter) and returns its
// combined output.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	if c.runAs != nil {
		runuser, err := findRunuser()
		if err != nil {
			return nil, err
		}
		args = append([]string{"-u", c.runAs.Username, "--", name}, args...)
		name = runuser
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// logTail is the end of the server log, or why it cannot be read.
func (c *Cluster) logTail() string {
	f, err := os.Open(c.logFile)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > logTail {
		if _, err := f.Seek(-logTail, io.SeekEnd); err != nil {
			return fmt.Sprintf("(reading server log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(reading server log: %v)", err)
	}
	return tail(b)
}

// tail is the end of b, at most logTail bytes, starting at a line.
func tail(b []byte) string {
	if len(b) > logTail {
		b = b[len(b)-logTail:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimRight(string(b), "\n")
}

// findBinaries returns the directory holding initdb and pg_ctl: Debian's
// PostgreSQL 15, else the newest /usr/lib/postgresql/*/bin, else PATH.
func findBinaries() (string, error) {
	has := func(dir string) bool {
		for _, tool := range []string{"initdb", "pg_ctl"} {
			fi, err := os.Stat(filepath.Join(dir, tool))
			if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if dir := "/usr/lib/postgresql/15/bin"; has(dir) {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(initdb); has(dir) {
			return dir, nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL not found: no initdb and pg_ctl in /usr/lib/postgresql/*/bin or PATH (Debian: apt-get install postgresql-15)")
}

// version is the major version in /usr/lib/postgresql/VERSION/bin, or 0.
func version(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func findRunuser() (string, error) {
	if p, err := exec.LookPath("runuser"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("pgtest: running as root, but runuser (util-linux) is not installed")
}

// tempBase is the directory to create clusters in: os.TempDir(), unless
// the tools must run as runAs and its mode bits keep runAs out of it (as
// with TMPDIR under /root); then /tmp.
func tempBase(runAs *user.User) string {
	base := os.TempDir()
	if runAs == nil || canEnter(runAs, base) {
		return base
	}
	return "/tmp"
}

// canEnter reports whether the mode bits of dir and its parents let u enter
// dir. It ignores supplementary groups and ACLs.
func canEnter(u *user.User, dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return true
		}
		var bit fs.FileMode
		switch {
		case strconv.Itoa(int(st.Uid)) == u.Uid:
			bit = 0o100
		case strconv.Itoa(int(st.Gid)) == u.Gid:
			bit = 0o010
		default:
			bit = 0o001
		}
		if fi.Mode().Perm()&bit == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// chown gives paths to u.
func chown(u *user.User, paths ...string) error {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("pgtest: uid of user %s: %w", u.Username, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("pgtest: gid of user %s: %w", u.Username, err)
	}
	for _, p := range paths {
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("pgtest: giving %s to user %s: %w", p, u.Username, err)
		}
	}
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// quoteConf quotes s as a postgresql.conf string.
func quoteConf(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// reapAbandoned stops and removes clusters left behind by test binaries
// that have exited without stopping them. It is best effort: it only looks
// at directories it can recognise and ignores every error.
func reapAbandoned(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pidText, ns, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || processExists(pid) || ns != pidNamespace() {
			continue // alive, or not ours to judge
		}
		bin, err := findBinaries()
		if err != nil {
			return
		}
		c := &Cluster{dir: dir, dataDir: filepath.Join(dir, "data"), logFile: filepath.Join(dir, "server.log"), bin: bin}
		if fi, err := os.Stat(dir); err == nil && os.Geteuid() == 0 {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				c.runAs, _ = user.LookupId(strconv.Itoa(int(st.Uid)))
			}
		}
		if c.running() {
			_ = c.pgCtlStop()
		}
		_ = os.RemoveAll(dir)
	}
}

// owner is the content of ownerFile for a cluster started by process pid:
// the pid and the pid namespace it means something in.
func owner(pid int) string {
	return strconv.Itoa(pid) + " " + pidNamespace() + "\n"
}

// pidNamespace names this process's pid namespace, as "pid:[INODE]".
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return "unknown"
	}
	return ns
}

// processExists reports whether process pid exists and is not a zombie.
func processExists(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// /proc/PID/stat is "PID (COMM) STATE ..."; COMM may hold anything.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: trust kill
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// Harness gives the tests of one package fresh databases in one cluster
// shared by the test binary. Its zero value is ready: keep one in a
// package-level variable of a _test.go file, call RunMain from TestMain and
// NewDatabase from tests (see the package documentation).
type Harness struct {
	ran     bool
	cluster *Cluster
	err     error // why cluster is nil
}

// RunMain starts a cluster, runs the tests and stops the cluster, and
// returns the exit code for os.Exit. If the cluster does not start, it
// returns 1 without running the tests when Required reports true, and
// otherwise runs them with PostgreSQL tests skipped.
func (h *Harness) RunMain(m *testing.M) int {
	h.ran = true
	h.cluster, h.err = Start()
	if h.err != nil {
		if Required() {
			fmt.Fprintf(os.Stderr, "%v\nPostgreSQL is required (CI=true or FHIR_REQUIRE_POSTGRES=1): failing\n", h.err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL not available, its tests will be skipped: %v\n", firstLine(h.err))
		return m.Run()
	}
	code := m.Run()
	if err := h.cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Cluster returns the test binary's cluster. It skips the test when
// PostgreSQL is not available.
func (h *Harness) Cluster(t testing.TB) *Cluster {
	t.Helper()
	if !h.ran {
		t.Fatal("pgtest: Harness.RunMain was not called: call it from TestMain")
	}
	if h.cluster == nil {
		t.Skipf("PostgreSQL not available: %v", h.err)
	}
	return h.cluster
}

// NewDatabase creates an empty database for the test, dropped when the test
// ends, and returns its connection URL. It skips the test when PostgreSQL is
// not available and fails it when the database cannot be created.
func (h *Harness) NewDatabase(t testing.TB) string {
	t.Helper()
	c := h.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL, err := c.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.dropDatabase(ctx, dbURL); err != nil {
			t.Error(err)
		}
	})
	return dbURL
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

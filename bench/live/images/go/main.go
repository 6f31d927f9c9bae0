// ngram-live-go: a standard-library net/http service (goroutines over a pool of OS threads).
//
// DELIBERATELY VULNERABLE (an attack target for the ngram-ids live evaluation; never deploy):
//   /tool/wc?file=NAME  runs `sh -c "wc -c /srv/data/NAME"` (command injection through NAME)
//   /read?name=NAME     returns the file /srv/data/NAME (path traversal through NAME)
//   POST /upload?name=N writes /srv/www/uploads/N (path traversal through N: ../page.html)
//   /fetch?url=URL      fetches URL and returns its start (server-side request forgery)
// Other handlers: / and /static/ (static files from /srv/www), /api/items (JSON: GET, POST,
// DELETE /api/items/ID), /api/stats, /api/hash?data=, /tool/uptime (a fixed command).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	mu    sync.Mutex
	items = map[string]map[string]any{}
	next  = 1
)

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func main() {
	static := http.FileServer(http.Dir("/srv/www"))
	http.Handle("/", static)
	http.Handle("/static/", http.StripPrefix("/static/", static))
	http.HandleFunc("/api/items", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodPost:
			var it map[string]any
			if err := json.NewDecoder(r.Body).Decode(&it); err != nil {
				reply(w, 400, map[string]string{"error": "bad json"})
				return
			}
			id := strconv.Itoa(next)
			next++
			it["id"] = id
			items[id] = it
			reply(w, 201, it)
		default:
			list := make([]map[string]any, 0, len(items))
			for _, it := range items {
				list = append(list, it)
			}
			reply(w, 200, list)
		}
	})
	http.HandleFunc("/api/items/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/api/items/")
		mu.Lock()
		defer mu.Unlock()
		it, ok := items[id]
		if !ok {
			reply(w, 404, map[string]string{"error": "no such item"})
			return
		}
		if r.Method == http.MethodDelete {
			delete(items, id)
			reply(w, 200, map[string]bool{"deleted": true})
			return
		}
		reply(w, 200, it)
	})
	http.HandleFunc("/api/stats", func(w http.ResponseWriter, r *http.Request) {
		load, _ := os.ReadFile("/proc/loadavg")
		mu.Lock()
		n := len(items)
		mu.Unlock()
		reply(w, 200, map[string]any{"items": n, "load": strings.Fields(string(load))[:3], "goroutines": runtime.NumGoroutine()})
	})
	http.HandleFunc("/api/hash", func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.Sum256([]byte(r.URL.Query().Get("data")))
		reply(w, 200, map[string]string{"sha256": hex.EncodeToString(sum[:])})
	})
	http.HandleFunc("/tool/uptime", func(w http.ResponseWriter, r *http.Request) {
		out, _ := exec.Command("cat", "/proc/uptime").CombinedOutput()
		w.Header().Set("Content-Type", "text/plain")
		w.Write(out)
	})
	// VULNERABLE: command injection.
	http.HandleFunc("/tool/wc", func(w http.ResponseWriter, r *http.Request) {
		out, _ := exec.Command("sh", "-c", "wc -c /srv/data/"+r.URL.Query().Get("file")).CombinedOutput()
		w.Header().Set("Content-Type", "text/plain")
		w.Write(out)
	})
	// VULNERABLE: path traversal (filepath.Join cleans "../" against the joined path).
	http.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		data, err := os.ReadFile(filepath.Join("/srv/data", r.URL.Query().Get("name")))
		w.Header().Set("Content-Type", "text/plain")
		if err != nil {
			w.WriteHeader(404)
			io.WriteString(w, err.Error())
			return
		}
		w.Write(data)
	})
	// VULNERABLE: server-side request forgery.
	http.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		client := http.Client{Timeout: 3 * time.Second}
		resp, err := client.Get(r.URL.Query().Get("url"))
		if err != nil {
			w.WriteHeader(502)
			io.WriteString(w, err.Error())
			return
		}
		defer resp.Body.Close()
		io.Copy(w, io.LimitReader(resp.Body, 1000))
	})
	http.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			reply(w, 405, map[string]string{"error": "POST only"})
			return
		}
		// VULNERABLE: path traversal (filepath.Join cleans "../" against the upload directory).
		name := r.URL.Query().Get("name")
		data, _ := io.ReadAll(r.Body)
		if err := os.WriteFile(filepath.Join("/srv/www/uploads", name), data, 0o644); err != nil {
			reply(w, 500, map[string]string{"error": err.Error()})
			return
		}
		reply(w, 201, map[string]any{"name": name, "bytes": len(data)})
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}

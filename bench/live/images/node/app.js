// ngram-live-node: a Node.js service on the standard library only (http, fs, child_process,
// crypto, url): one JavaScript thread (the libuv event loop) with V8's JIT and helper threads,
// and libuv's worker pool doing the file system calls (fs.readFile, fs.writeFile).
//
// DELIBERATELY VULNERABLE (an attack target for the ngram-ids live evaluation; never deploy):
//   /tool/wc?file=NAME   runs `sh -c "wc -c /srv/data/NAME"` (child_process.exec: command
//                        injection through NAME)
//   /read?name=NAME      returns the file path.join("/srv/data", NAME) (path traversal)
//   POST /upload?name=N  writes path.join("/srv/www/uploads", N) (path traversal: ../page.html)
//   /fetch?url=URL       fetches URL and returns its start (server-side request forgery)
// Other handlers: / and /static/FILE (static files from /srv/www), /api/items (JSON: GET, POST,
// GET and DELETE /api/items/ID), /api/stats, /api/hash?data=, /tool/uptime (a fixed command).
// The same routes and behaviour as the python and go services (bench/live/images/python/app.py).
'use strict';

const http = require('http');
const https = require('https');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const childProcess = require('child_process');

const STATIC = '/srv/www';
const DATA = '/srv/data';
const TYPES = { '.html': 'text/html', '.css': 'text/css', '.js': 'text/javascript', '.txt': 'text/plain' };
const items = new Map();
let next = 1;

function reply(res, code, body, ctype = 'application/json') {
  const data = Buffer.isBuffer(body) ? body : Buffer.from(String(body));
  res.writeHead(code, { 'Content-Type': ctype, 'Content-Length': data.length });
  res.end(data);
}

function readBody(req, done) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => done(Buffer.concat(chunks)));
}

function notFound(res) {
  reply(res, 404, '{"error": "not found"}');
}

function onGet(req, res, url) {
  const p = url.pathname;
  const q = url.searchParams;
  if (p === '/' || p.startsWith('/static/')) {
    const name = p === '/' ? 'index.html' : path.basename(p.slice('/static/'.length));
    fs.readFile(path.join(STATIC, name), (err, data) => {
      if (err) return notFound(res);
      reply(res, 200, data, TYPES[path.extname(name)] || 'application/octet-stream');
    });
    return;
  }
  if (p === '/api/items') {
    const list = [...items.values()].sort((a, b) => Number(a.id) - Number(b.id));
    return reply(res, 200, JSON.stringify(list));
  }
  if (p.startsWith('/api/items/')) {
    const item = items.get(p.slice('/api/items/'.length));
    return item ? reply(res, 200, JSON.stringify(item)) : reply(res, 404, '{"error": "no such item"}');
  }
  if (p === '/api/stats') {
    fs.readFile('/proc/loadavg', 'utf8', (err, text) => {
      const load = err ? [] : text.split(/\s+/).slice(0, 3);
      reply(res, 200, JSON.stringify({ items: items.size, load, uptime: process.uptime() }));
    });
    return;
  }
  if (p === '/api/hash') {
    const sum = crypto.createHash('sha256').update(q.get('data') || '').digest('hex');
    return reply(res, 200, JSON.stringify({ sha256: sum }));
  }
  if (p === '/tool/uptime') {
    childProcess.execFile('cat', ['/proc/uptime'], { timeout: 20000 }, (err, stdout) => {
      reply(res, 200, stdout, 'text/plain');
    });
    return;
  }
  if (p === '/tool/wc') {
    // VULNERABLE: command injection (exec runs the string with /bin/sh -c).
    const name = q.has('file') ? q.get('file') : 'a.txt';
    childProcess.exec('wc -c /srv/data/' + name, { timeout: 20000 }, (err, stdout, stderr) => {
      reply(res, 200, stdout + stderr, 'text/plain');
    });
    return;
  }
  if (p === '/fetch') {
    // VULNERABLE: server-side request forgery.
    return fetchStart(q.get('url') || '', res);
  }
  if (p === '/read') {
    // VULNERABLE: path traversal (path.join resolves "../" against the data directory).
    fs.readFile(path.join(DATA, q.get('name') || ''), (err, data) => {
      if (err) return reply(res, 404, err.message, 'text/plain');
      reply(res, 200, data, 'text/plain');
    });
    return;
  }
  notFound(res);
}

// fetchStart URL RES: GETs URL (http or https) and answers with the first 1000 bytes of its
// body, or 502 with the error.
function fetchStart(target, res) {
  let answered = false;
  const answer = (code, body) => {
    if (!answered) {
      answered = true;
      reply(res, code, body, 'text/plain');
    }
  };
  let client;
  try {
    const u = new URL(target);
    const mod = u.protocol === 'https:' ? https : http;
    client = mod.get(u, { timeout: 3000 }, (r) => {
      const chunks = [];
      let n = 0;
      r.on('data', (c) => {
        chunks.push(c);
        n += c.length;
        if (n >= 1000) {
          answer(200, Buffer.concat(chunks).subarray(0, 1000));
          r.destroy();
        }
      });
      r.on('end', () => answer(200, Buffer.concat(chunks).subarray(0, 1000)));
      r.on('error', (e) => answer(502, e.message));
    });
  } catch (e) {
    return answer(502, e.message);
  }
  client.on('timeout', () => client.destroy(new Error('timed out')));
  client.on('error', (e) => answer(502, e.message));
}

function onPost(req, res, url) {
  readBody(req, (body) => {
    if (url.pathname === '/api/items') {
      let item;
      try {
        item = JSON.parse(body.length ? body.toString() : '{}');
      } catch (e) {
        item = null;
      }
      if (item === null || typeof item !== 'object' || Array.isArray(item)) {
        return reply(res, 400, '{"error": "bad json"}');
      }
      item.id = String(next++);
      items.set(item.id, item);
      return reply(res, 201, JSON.stringify(item));
    }
    if (url.pathname === '/upload') {
      // VULNERABLE: path traversal (no basename).
      const name = url.searchParams.has('name') ? url.searchParams.get('name') : 'upload.txt';
      fs.writeFile(path.join(STATIC, 'uploads', name), body, (err) => {
        if (err) return reply(res, 500, JSON.stringify({ error: err.message }));
        reply(res, 201, JSON.stringify({ name, bytes: body.length }));
      });
      return;
    }
    notFound(res);
  });
}

function onDelete(req, res, url) {
  const p = url.pathname;
  if (p.startsWith('/api/items/')) {
    const gone = items.delete(p.slice('/api/items/'.length));
    return reply(res, gone ? 200 : 404, JSON.stringify({ deleted: gone }));
  }
  notFound(res);
}

const server = http.createServer((req, res) => {
  let url;
  try {
    url = new URL(req.url, 'http://localhost');
  } catch (e) {
    return reply(res, 400, '{"error": "bad url"}');
  }
  if (req.method === 'GET') return onGet(req, res, url);
  if (req.method === 'POST') return onPost(req, res, url);
  if (req.method === 'DELETE') return onDelete(req, res, url);
  notFound(res);
});

// docker stop: end at once (as pid 1, a signal without a handler would be ignored).
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
server.listen(8080, '0.0.0.0');

<?php
// ngram-live-apache: a JSON API over a file (/srv/data/items.json, locked with flock).
header('Content-Type: application/json');
$file = '/srv/state/items.json';
$fh = fopen($file, 'c+');
flock($fh, $_SERVER['REQUEST_METHOD'] === 'GET' ? LOCK_SH : LOCK_EX);
$items = json_decode(stream_get_contents($fh) ?: '[]', true) ?: [];
$method = $_SERVER['REQUEST_METHOD'];
if ($method === 'POST') {
    $item = json_decode(file_get_contents('php://input'), true) ?: [];
    $item['id'] = (string) (count($items) ? max(array_map('intval', array_keys($items))) + 1 : 1);
    $items[$item['id']] = $item;
    ftruncate($fh, 0); rewind($fh); fwrite($fh, json_encode($items));
    http_response_code(201);
    echo json_encode($item);
} elseif ($method === 'DELETE') {
    $id = $_GET['id'] ?? '';
    $found = isset($items[$id]);
    unset($items[$id]);
    ftruncate($fh, 0); rewind($fh); fwrite($fh, json_encode($items));
    http_response_code($found ? 200 : 404);
    echo json_encode(['deleted' => $found]);
} elseif (isset($_GET['id'])) {
    $id = $_GET['id'];
    if (isset($items[$id])) { echo json_encode($items[$id]); } else { http_response_code(404); echo '{"error":"no such item"}'; }
} else {
    echo json_encode(array_values($items));
}
flock($fh, LOCK_UN);
fclose($fh);

<?php
// ngram-live-apache: a dynamic page (items from the JSON file, server load).
$items = json_decode(@file_get_contents('/srv/state/items.json') ?: '[]', true) ?: [];
$load = sys_getloadavg();
?><!doctype html>
<html><head><title>ngram-ids live (PHP)</title><link rel="stylesheet" href="style.css"></head>
<body><h1>Items</h1><p><?= count($items) ?> items, load <?= htmlspecialchars(implode(' ', $load)) ?></p>
<ul><?php foreach (array_slice($items, -10) as $it): ?><li><?= htmlspecialchars($it['name'] ?? '?') ?></li><?php endforeach; ?></ul>
</body></html>

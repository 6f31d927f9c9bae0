<?php
// DELIBERATELY VULNERABLE (path traversal through ?name=; an attack target, never deploy).
header('Content-Type: text/plain');
$data = @file_get_contents('/srv/data/' . ($_GET['name'] ?? ''));
if ($data === false) { http_response_code(404); echo "not found\n"; } else { echo $data; }

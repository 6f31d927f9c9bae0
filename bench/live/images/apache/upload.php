<?php
header('Content-Type: application/json');
$name = basename($_GET['name'] ?? 'upload.txt');
$data = file_get_contents('php://input');
file_put_contents('/var/www/html/uploads/' . $name, $data);
http_response_code(201);
echo json_encode(['name' => $name, 'bytes' => strlen($data)]);

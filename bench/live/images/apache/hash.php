<?php
header('Content-Type: application/json');
echo json_encode(['sha256' => hash('sha256', $_GET['data'] ?? '')]);

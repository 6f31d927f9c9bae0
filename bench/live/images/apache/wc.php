<?php
// DELIBERATELY VULNERABLE (command injection through ?file=; an attack target, never deploy).
header('Content-Type: text/plain');
echo shell_exec('wc -c /srv/data/' . ($_GET['file'] ?? 'a.txt') . ' 2>&1');

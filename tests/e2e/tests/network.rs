//! Networking: `-p` port publishing (nginx reached over the host's loopback) and
//! `--network none`. Only loopback traffic: nothing leaves the machine.

use std::time::{Duration, Instant};

use ngram_e2e::{free_port, http_get, setup, BUSYBOX, NGINX, NGINX_INDEX};

#[test]
fn published_port_serves_nginx_on_loopback() {
    let Some(e) = setup("published_port_serves_nginx_on_loopback") else {
        return;
    };
    let c = e.container();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    e.run_detached(&c, &["-p", &publish, NGINX]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        match http_get(port) {
            Ok(answer) => break answer,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(err) => panic!(
                "no HTTP answer on 127.0.0.1:{port} within 30 s ({err}); logs: {:?}",
                e.logs(&c)
            ),
        }
    };
    assert!(status.contains(" 200 "), "status {status:?}, body {body:?}");
    assert_eq!(body.trim(), NGINX_INDEX);
    let port_out = e.docker(&["port", &c.name, "80"]);
    assert_eq!(port_out.success().out(), format!("127.0.0.1:{port}"));
    // nginx workers run as www-data beside the master (root).
    let top = e.docker(&["top", &c.name]);
    assert!(top.stdout.contains("nginx: master process"), "{top}");
    assert!(top.stdout.contains("nginx: worker process"), "{top}");
}

#[test]
fn network_none_has_only_loopback() {
    let Some(e) = setup("network_none_has_only_loopback") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &["--rm", "--network", "none", BUSYBOX, "ls", "/sys/class/net"],
    );
    out.success();
    assert_eq!(out.stdout, "lo\n", "{out}");
    // The control: the default bridge network adds eth0.
    let c = e.container();
    let out = e.run(&c, &["--rm", BUSYBOX, "ls", "/sys/class/net"]);
    out.success();
    assert_eq!(out.stdout, "eth0\nlo\n", "{out}");
}

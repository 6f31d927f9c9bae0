fetch("api/items").then(r => r.json()).then(items => console.log(items.length + " items"));
